#!/usr/bin/env bash
# Runs dqlite-bench (tokio with and without its statement cache, smol, the sqlx driver, and
# the bare-core floor), the go-dqlite benchmark (bench/peers/go) built twice, against
# bookworm's go-dqlite 1.11.5 (target/peers/gobench) and against forky's go-dqlite 3.0.x
# (target/peers/gobench3, bench/peers/go/setup3.sh), and the Python dqlite-client benchmark
# (bench/peers/python, on a private Python 3.13 that bench/peers/python/setup.sh fetches)
# against one local 3-node cluster, in two placements (bench/peers/lib.sh: pinned,
# servers on core 0 and clients on core 1; shared, no pinning), alternating clients within
# each round so that ratios come from one run on one machine. Workload b runs on its own so
# that the servers' CPU per inserted row can be read. Prints one JSON line per client run,
# then, per placement, the medians and each target's ratio (bench/peers/summarize.py). The
# lines are kept in target/peers/compare.jsonl. The servers are bookworm's dqlite-demo, or the
# one DQLITE_SERVER names (scripts/local-cluster.sh), e.g. forky's from tests/servers/setup.sh:
#   DQLITE_SERVER=$PWD/target/servers/forky/bin/dqlite-demo bash bench/peers/compare.sh 3
# Then workload g, failover (bench/peers/failover.sh, FAILOVER_KILLS kills per client and
# placement, default 5; 0 leaves it out), whose lines join the others.
# Usage: bash bench/peers/compare.sh [rounds]   (default 7; PLACEMENTS="pinned" for one)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-7}"
placements="${PLACEMENTS:-pinned shared}"
failover_kills="${FAILOVER_KILLS:-5}"

out=target/peers
# shellcheck source=bench/peers/lib.sh
. bench/peers/lib.sh
build_gobench
# The go-dqlite 3 peer is the targets' reference: without it there is no run.
build_gobench3 || exit 1
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
server_version=$(dqlite_server_version)
nodes=127.0.0.1:9201,127.0.0.1:9202,127.0.0.1:9203
# Followers first, for workload e (node 1 bootstrapped the cluster and leads).
followers_first=127.0.0.1:9202,127.0.0.1:9203,127.0.0.1:9201
bench=target/release/dqlite-bench

pids="${cluster_pids[*]}"

# Creates the tables (1 000 000 rows) and measures streaming memory once per runtime.
{
  "$bench" --cluster "$nodes" --runtime tokio --workloads f
  "$bench" --cluster "$nodes" --runtime smol --workloads f
  for r in $(seq 1 "$rounds"); do
    for p in $placements; do
      # shellcheck disable=SC2086
      place_servers "$p" $pids
      # b inserts 20 000 rows (10 000 one at a time, 10 000 pipelined); go-dqlite's (both
      # peers) and Python's b, and the floor's, only the first 10 000.
      tagged "$p" "$pids" 20000 "$bench" --cluster "$nodes" --runtime tokio --workloads b
      tagged "$p" "$pids" 0 "$bench" --cluster "$nodes" --runtime tokio --workloads acdehij
      tagged "$p" "$pids" 20000 "$bench" --cluster "$nodes" --runtime tokio --statement-cache 0 --workloads b
      tagged "$p" "$pids" 0 "$bench" --cluster "$nodes" --runtime tokio --statement-cache 0 --workloads ad
      tagged "$p" "$pids" 10000 "$out/gobench" -cluster "$followers_first" -workloads b
      tagged "$p" "$pids" 0 "$out/gobench" -cluster "$followers_first" -workloads acdehij
      tagged "$p" "$pids" 10000 "$out/gobench3" -cluster "$followers_first" -workloads b
      tagged "$p" "$pids" 0 "$out/gobench3" -cluster "$followers_first" -workloads acdehij
      tagged "$p" "$pids" 20000 "$bench" --cluster "$nodes" --runtime smol --workloads b
      tagged "$p" "$pids" 0 "$bench" --cluster "$nodes" --runtime smol --workloads acdehij
      tagged "$p" "$pids" 10000 "$bench" --cluster "$nodes" --sqlx --workloads b
      tagged "$p" "$pids" 0 "$bench" --cluster "$nodes" --sqlx --workloads ac
      tagged "$p" "$pids" 10000 "$bench" --cluster "$nodes" --floor --workloads b
      tagged "$p" "$pids" 0 "$bench" --cluster "$nodes" --floor --workloads ac
      if [ -n "$py" ]; then
        tagged "$p" "$pids" 10000 "$py" bench/peers/python/bench.py --cluster "$followers_first" --workloads b
        tagged "$p" "$pids" 0 "$py" bench/peers/python/bench.py --cluster "$followers_first" --workloads acde
      fi
    done
  done
  # Workload g kills leaders, so it runs on clusters of its own (bench/peers/failover.sh).
  if [ "$failover_kills" -gt 0 ]; then
    PLACEMENTS="$placements" bash bench/peers/failover.sh "$failover_kills" >&2
    cat "$out/failover.jsonl"
  fi
} | tee "$out/compare.jsonl"
echo
python3 bench/peers/summarize.py <"$out/compare.jsonl"
