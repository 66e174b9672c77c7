#!/usr/bin/env bash
# Runs dqlite-bench (tokio, smol, and the bare-core floor) and the go-dqlite benchmark
# (bench/peers/go) against one local 3-node cluster, alternating rounds so that ratios come
# from one run on one machine. Prints one JSON line per client per round.
# Usage: bash bench/peers/compare.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"

need=()
command -v dqlite-demo >/dev/null 2>&1 || need+=(go-dqlite)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/canonical/go-dqlite ] || need+=(golang-github-canonical-go-dqlite-dev)
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

out=target/peers
mkdir -p "$out"
# go-dqlite from Debian's packages, built offline in GOPATH mode.
(cd bench/peers/go && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../../$out/gocache" \
  go build -o "../../../$out/gobench" .)
cargo build -q --release -p dqlite-bench

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
  [ "$i" -gt 1 ] && join=(--join 127.0.0.1:9201)
  mkdir -p "$dir/n$i"
  dqlite-demo --api "127.0.0.1:810$i" --db "127.0.0.1:920$i" -D "$dir/n$i" "${join[@]}" \
    >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/920$i") 2>/dev/null && break
    sleep 0.1
  done
done
nodes=127.0.0.1:9201,127.0.0.1:9202,127.0.0.1:9203
# Followers first, for workload e (node 1 bootstrapped the cluster and leads).
followers_first=127.0.0.1:9202,127.0.0.1:9203,127.0.0.1:9201
bench=target/release/dqlite-bench

# Creates the tables (1 000 000 rows) and measures streaming memory once.
"$bench" --cluster "$nodes" --workloads f
for r in $(seq 1 "$rounds"); do
  "$bench" --cluster "$nodes" --runtime tokio --workloads abcde
  "$out/gobench" -cluster "$followers_first" -workloads abcde
  "$bench" --cluster "$nodes" --runtime smol --workloads abcde
  "$bench" --cluster "$nodes" --floor --workloads abc
done
