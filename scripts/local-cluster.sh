# Sourced by scripts that need a throw-away local 3-node dqlite cluster.
# start_local_cluster API_PREFIX DB_PREFIX starts dqlite-demo nodes 1-3 on
# 127.0.0.1:${API_PREFIX}1..3 (HTTP API) and 127.0.0.1:${DB_PREFIX}1..3 (dqlite), in a
# temporary directory, installing Debian's go-dqlite first when dqlite-demo is missing. The
# nodes are killed and the directory removed when the calling script exits.

start_local_cluster() {
  local api="$1" db="$2"
  if ! command -v dqlite-demo >/dev/null 2>&1; then
    echo "installing go-dqlite (dqlite-demo)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq go-dqlite
  fi
  cluster_dir=$(mktemp -d)
  cluster_pids=()
  trap 'for p in "${cluster_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$cluster_dir"' EXIT
  local i join
  for i in 1 2 3; do
    join=()
    [ "$i" -gt 1 ] && join=(--join "127.0.0.1:${db}1")
    mkdir -p "$cluster_dir/n$i"
    dqlite-demo --api "127.0.0.1:${api}$i" --db "127.0.0.1:${db}$i" -D "$cluster_dir/n$i" "${join[@]}" \
      >"$cluster_dir/n$i.log" 2>&1 &
    cluster_pids+=($!)
    disown
    # Each node must accept connections before the next one joins.
    for _ in $(seq 1 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/${db}$i") 2>/dev/null && break
      sleep 0.1
    done
  done
}
