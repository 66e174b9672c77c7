#!/usr/bin/env bash
# Where the time goes when client and servers share the machine's cores (the "shared"
# placement of compare.sh): workloads a (2000 sequential SELECT 1) and b (10 000 INSERTs one at
# a time), each run by dqlite-bench on tokio with its default busy-poll window, the same with
# busy-polling off (--busy-poll 0), and the go-dqlite 3 peer, against one local 3-node cluster,
# nothing pinned. Per run it reads:
#   - the client's own CPU time, context switches and CPU migrations (perf stat, software
#     events);
#   - the three servers' CPU time, time spent runnable but waiting for a core, and number of
#     times scheduled, summed over all their threads (/proc/PID/task/*/schedstat, before and
#     after);
#   - in a second run under strace -f -c, the client's system calls.
# and prints one JSON line per run, then a table (per workload, per client: medians over the
# rounds). The lines are kept in target/peers/explain.jsonl.
# Usage: bash bench/peers/explain.sh [rounds]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-3}"
out=target/peers
# shellcheck source=bench/peers/lib.sh
. bench/peers/lib.sh
build_gobench3 || exit 1
cargo build -q --release -p dqlite-bench
for tool in perf strace; do
  command -v "$tool" >/dev/null || {
    echo "explain.sh: $tool is missing (apt-get install -y linux-perf strace)" >&2
    exit 1
  }
done
# shellcheck source=scripts/local-cluster.sh
. scripts/local-cluster.sh
start_local_cluster 812 922
nodes=127.0.0.1:9221,127.0.0.1:9222,127.0.0.1:9223
bench=target/release/dqlite-bench
server_version=$(dqlite_server_version)

# run_ns wait_ns slices, summed over every thread of the given processes.
schedstat() {
  local pid
  for pid in "$@"; do
    cat /proc/"$pid"/task/*/schedstat 2>/dev/null
  done | awk '{r += $1; w += $2; s += $3} END {printf "%.0f %.0f %.0f", r, w, s}'
}
# Creates the tables once.
"$bench" --cluster "$nodes" --workloads a >/dev/null

tmp=$(mktemp -d)
{
  for _ in $(seq 1 "$rounds"); do
    for w in a b; do
      for who in ours ours-nopoll go3; do
        case "$who" in
          ours) cmd=("$bench" --cluster "$nodes" --runtime tokio --workloads "$w") ;;
          ours-nopoll) cmd=("$bench" --cluster "$nodes" --runtime tokio --busy-poll 0 --workloads "$w") ;;
          go3) cmd=("$out/gobench3" -cluster "$nodes" -workloads "$w") ;;
        esac
        read -r r0 w0 s0 <<<"$(schedstat "${cluster_pids[@]}")"
        perf stat -x, -o "$tmp/perf" -e task-clock,context-switches,cpu-migrations -- "${cmd[@]}" >"$tmp/json"
        read -r r1 w1 s1 <<<"$(schedstat "${cluster_pids[@]}")"
        strace -f -c -o "$tmp/strace" -- "${cmd[@]}" >/dev/null
        python3 - "$who" "$w" "$server_version" "$tmp" $((r1 - r0)) $((w1 - w0)) $((s1 - s0)) <<'PY'
import json, sys
who, w, version, tmp, run, wait, slices = sys.argv[1:8]
figures = json.loads(open(f"{tmp}/json").read().strip().splitlines()[-1])
perf = {}
for line in open(f"{tmp}/perf"):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0] and not line.startswith("#"):
        perf[parts[2]] = float(parts[0])
calls = 0
for line in open(f"{tmp}/strace"):
    parts = line.split()
    if parts and parts[-1] == "total":
        calls = int(parts[3]) if len(parts) >= 5 else int(parts[2])
n = 2000 if w == "a" else 10000
key = "a_p50_us" if w == "a" else "b_serial_ms"
print(json.dumps({
    "who": who, "workload": w, "server_version": version, key: figures.get(key),
    "client_cpu_us_per_op": perf.get("task-clock", 0) * 1e3 / n,
    "client_switches_per_op": perf.get("context-switches", 0) / n,
    "client_migrations": perf.get("cpu-migrations", 0),
    "client_syscalls_per_op": calls / n,
    "servers_cpu_us_per_op": int(run) / 1e3 / n,
    "servers_runqueue_wait_us_per_op": int(wait) / 1e3 / n,
    "servers_slices_per_op": int(slices) / n,
}))
PY
      done
    done
  done
} | tee "$out/explain.jsonl"
rm -rf "$tmp"
echo
python3 -c "$(
  cat <<'PY'
import collections, json, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in sys.stdin:
    j = json.loads(line)
    for k, v in j.items():
        if isinstance(v, (int, float)):
            rows[(j["workload"], j["who"])][k].append(v)
cols = ["a_p50_us", "b_serial_ms", "client_cpu_us_per_op", "client_switches_per_op",
        "client_syscalls_per_op", "servers_cpu_us_per_op", "servers_runqueue_wait_us_per_op",
        "servers_slices_per_op", "client_migrations"]
print("| workload | client | " + " | ".join(cols) + " |")
print("| --- | --- |" + " --- |" * len(cols))
for (w, who), f in rows.items():
    cells = [f"{statistics.median(f[c]):,.2f}" if f.get(c) else "-" for c in cols]
    print(f"| {w} | {who} | " + " | ".join(cells) + " |")
PY
)" <"$out/explain.jsonl"
