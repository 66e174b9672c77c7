#!/usr/bin/env bash
# Runs dqlite-bench (tokio, smol, and the bare-core floor), the go-dqlite benchmark
# (bench/peers/go) and the Python dqlite-client benchmark (bench/peers/python, on a private
# Python 3.13 that bench/peers/python/setup.sh fetches) against one local 3-node cluster, alternating rounds so that ratios come
# from one run on one machine. Prints one JSON line per client per round, then the medians
# and each target's ratio (bench/peers/summarize.py). The lines are kept in
# target/peers/compare.jsonl.
# Usage: bash bench/peers/compare.sh [rounds]   (default 7)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-7}"

need=()
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
# The Python dqlite-client 0.8.0 needs Python 3.13: a private one from Debian trixie.
py="$out/pyvenv/bin/python"
if ! bash bench/peers/python/setup.sh >&2; then
  echo "compare.sh: the Python peer could not be set up; running without it" >&2
  py=""
fi

# shellcheck source=scripts/local-cluster.sh
. scripts/local-cluster.sh
start_local_cluster 810 920
nodes=127.0.0.1:9201,127.0.0.1:9202,127.0.0.1:9203
# Followers first, for workload e (node 1 bootstrapped the cluster and leads).
followers_first=127.0.0.1:9202,127.0.0.1:9203,127.0.0.1:9201
bench=target/release/dqlite-bench

# Creates the tables (1 000 000 rows) and measures streaming memory once per runtime.
{
  "$bench" --cluster "$nodes" --runtime tokio --workloads f
  "$bench" --cluster "$nodes" --runtime smol --workloads f
  for r in $(seq 1 "$rounds"); do
    "$bench" --cluster "$nodes" --runtime tokio --workloads abcde
    "$out/gobench" -cluster "$followers_first" -workloads abcde
    "$bench" --cluster "$nodes" --runtime smol --workloads abcde
    "$bench" --cluster "$nodes" --floor --workloads abc
    if [ -n "$py" ]; then
      "$py" bench/peers/python/bench.py --cluster "$followers_first" --workloads abcde
    fi
  done
} | tee "$out/compare.jsonl"
echo
python3 bench/peers/summarize.py <"$out/compare.jsonl"
