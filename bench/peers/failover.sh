#!/usr/bin/env bash
# Workload g, failover: dqlite-failover (bench/src/bin/failover.rs) starts a 3-node cluster of
# its own for each writer, SIGKILLs the leader KILLS times under a light write load (a row
# every 10 ms) and measures, per kill, the time from the kill to the writer's first
# acknowledged write and the client's share of it (from the moment the new leader first took
# a write of the driver's own to the writer's first ack). The writers, one after the other in
# each placement (bench/peers/lib.sh: pinned and shared): ours (dqlite-bench
# --failover-writer: a Pool on tokio), and the go-dqlite peer built against go-dqlite 3.0.x and
# 1.11.5 (database/sql). The server is the harness's: dqlite-demo from PATH, or the one
# DQLITE_SERVER names (e.g. target/servers/forky/bin/dqlite-demo from tests/servers/setup.sh,
# with DQLITE_SERVER_VERSION).
#
# Prints one JSON line per writer and placement, then the medians and the g targets' ratios
# (bench/peers/summarize.py). The lines are kept in target/peers/failover.jsonl.
# Usage: bash bench/peers/failover.sh [kills]   (default 5; PLACEMENTS="pinned" for one)
set -euo pipefail
cd "$(dirname "$0")/../.."
kills="${1:-5}"
placements="${PLACEMENTS:-pinned shared}"
out=target/peers
# shellcheck source=bench/peers/lib.sh
. bench/peers/lib.sh
build_gobench
build_gobench3 || exit 1
cargo build -q --release -p dqlite-bench
failover=target/release/dqlite-failover

# The Go peer names itself (client, Go and go-dqlite versions) in the JSON line it prints for
# no workload; that line, without its braces, labels its failover runs.
label_of() {
  "$1" -cluster unused -workloads "" | sed 's/^{//; s/}$//'
}
go3=$(label_of "$out/gobench3")
go1=$(label_of "$out/gobench")
ours='"client":"dqlite-rs","runtime":"tokio","transport":"tcp"'

{
  for p in $placements; do
    "$failover" --kills "$kills" --placement "$p" --label "$ours" -- \
      target/release/dqlite-bench --cluster '{cluster}' --failover-writer '{stop}'
    "$failover" --kills "$kills" --placement "$p" --label "$go3" -- \
      "$out/gobench3" -cluster '{cluster}' -failover-writer '{stop}'
    "$failover" --kills "$kills" --placement "$p" --label "$go1" -- \
      "$out/gobench" -cluster '{cluster}' -failover-writer '{stop}'
  done
} | tee "$out/failover.jsonl"
echo
python3 bench/peers/summarize.py <"$out/failover.jsonl"
