# Sourced by scripts that need a throw-away local 3-node dqlite cluster.
# start_local_cluster API_PREFIX DB_PREFIX starts dqlite-demo nodes 1-3 on
# 127.0.0.1:${API_PREFIX}1..3 (HTTP API) and 127.0.0.1:${DB_PREFIX}1..3 (dqlite), in a
# temporary directory, installing Debian's go-dqlite first when dqlite-demo is missing. The
# nodes are killed and the directory removed when the calling script exits. DQLITE_SERVER, as
# for the tests, names another dqlite-demo (e.g. target/servers/forky/bin/dqlite-demo, from
# tests/servers/setup.sh).
# dqlite_server_version prints the version of the server start_local_cluster runs: from
# DQLITE_SERVER_VERSION, the VERSION file beside DQLITE_SERVER's bin/, or the installed
# libdqlite0 package.

dqlite_server_version() {
  local v
  if [ -n "${DQLITE_SERVER_VERSION:-}" ]; then
    echo "$DQLITE_SERVER_VERSION"
  elif [ -n "${DQLITE_SERVER:-}" ]; then
    cat "$(dirname "$DQLITE_SERVER")/../VERSION"
  else
    v=$(dpkg-query -W -f='${Version}' libdqlite0)
    v=${v#*:}
    echo "${v%%[-+~]*}"
  fi
}

start_local_cluster() {
  local api="$1" db="$2"
  local server="${DQLITE_SERVER:-dqlite-demo}"
  if [ -z "${DQLITE_SERVER:-}" ] && ! command -v dqlite-demo >/dev/null 2>&1; then
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
    "$server" --api "127.0.0.1:${api}$i" --db "127.0.0.1:${db}$i" -D "$cluster_dir/n$i" "${join[@]}" \
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
