#!/usr/bin/env bash
# Starts a local 3-node dqlite cluster on 127.0.0.1:9001-9003 (installing Debian's go-dqlite
# when dqlite-demo is missing), runs the quickstart example against it, then stops the
# cluster. Usage: bash scripts/quickstart.sh [tokio|smol]
set -euo pipefail
cd "$(dirname "$0")/.."
runtime="${1:-tokio}"
case "$runtime" in
  tokio|smol) ;;
  *) echo "usage: bash scripts/quickstart.sh [tokio|smol]" >&2; exit 2 ;;
esac

if ! command -v dqlite-demo >/dev/null 2>&1; then
  echo "installing go-dqlite (dqlite-demo)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq go-dqlite
fi

cargo build -q -p "dqlite-$runtime" --example quickstart

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for i in 1 2 3; do
  join=()
  [ "$i" -gt 1 ] && join=(--join 127.0.0.1:9001)
  mkdir -p "$dir/n$i"
  dqlite-demo --api "127.0.0.1:800$i" --db "127.0.0.1:900$i" -D "$dir/n$i" "${join[@]}" \
    >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  # Node 1 must accept connections before the others join it.
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/900$i") 2>/dev/null && break
    sleep 0.1
  done
done

cargo run -q -p "dqlite-$runtime" --example quickstart -- 127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003
