#!/usr/bin/env python3
"""Reads the JSON lines of bench/peers/compare.sh on stdin and prints, per client, the median
of every figure over the rounds, then each target's ratio against go-dqlite, the Python
dqlite-client or the floor, from the same run, as Markdown tables."""

import collections
import json
import statistics
import sys

CLIENTS = [
    ("dqlite-rs", "tokio"),
    ("dqlite-rs", "smol"),
    ("dqlite-rs-floor", "blocking"),
    ("go-dqlite", "go"),
    ("dqlite-client-py", "python3.13"),
]
FIGURES = [
    ("a_p50_us", "a p50 (µs)"),
    ("a_p99_us", "a p99 (µs)"),
    ("b_serial_ms", "b one at a time (ms)"),
    ("b_pipelined_ms", "b pipelined (ms)"),
    ("c_wall_ms", "c streamed, wall (ms)"),
    ("c_cpu_ms", "c streamed, client CPU (ms)"),
    ("c_fetch_wall_ms", "c all rows kept, wall (ms)"),
    ("c_fetch_cpu_ms", "c all rows kept, client CPU (ms)"),
    ("d_qps", "d pool (queries/s)"),
    ("e_first_result_ms", "e first result (ms)"),
    ("f_peak_rss_mib", "f peak RSS, 1M rows (MiB)"),
]
# (name, our figure, reference client, reference figure, bound, lower is better)
TARGETS = [
    ("a p50 <= 0.9x go", "a_p50_us", "go", "a_p50_us", 0.9, True),
    ("b one at a time <= 0.8x go", "b_serial_ms", "go", "b_serial_ms", 0.8, True),
    ("b pipelined <= 0.4x go", "b_pipelined_ms", "go", "b_serial_ms", 0.4, True),
    ("c wall <= 1.05x floor", "c_wall_ms", "floor", "c_wall_ms", 1.05, True),
    ("c client CPU <= 0.3x go", "c_cpu_ms", "go", "c_cpu_ms", 0.3, True),
    ("d >= 1.2x go", "d_qps", "go", "d_qps", 1.2, False),
    ("e <= 1.0x go", "e_first_result_ms", "go", "e_first_result_ms", 1.0, True),
    # At least 3x faster than the Python client on every workload. It has no streaming: its c
    # keeps every row, as our c_fetch does.
    ("a p50 <= 1/3 python", "a_p50_us", "py", "a_p50_us", 1 / 3, True),
    ("b one at a time <= 1/3 python", "b_serial_ms", "py", "b_serial_ms", 1 / 3, True),
    ("c all rows, wall <= 1/3 python", "c_fetch_wall_ms", "py", "c_fetch_wall_ms", 1 / 3, True),
    ("c all rows, CPU <= 1/3 python", "c_fetch_cpu_ms", "py", "c_fetch_cpu_ms", 1 / 3, True),
    ("d >= 3x python", "d_qps", "py", "d_qps", 3.0, False),
    ("e <= 1/3 python", "e_first_result_ms", "py", "e_first_result_ms", 1 / 3, True),
]


def main():
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        j = json.loads(line)
        key = (j.get("client"), j.get("runtime"))
        for k, v in j.items():
            if isinstance(v, (int, float)):
                runs[key][k].append(v)
    med = {
        key: {k: statistics.median(v) for k, v in figs.items()}
        for key, figs in runs.items()
    }
    rounds = max((len(v) for f in runs.values() for v in f.values()), default=0)
    present = [c for c in CLIENTS if c in med]
    print(f"Medians of {rounds} rounds.\n")
    print("| figure | " + " | ".join(f"{c} ({r})" for c, r in present) + " |")
    print("| --- |" + " --- |" * len(present))
    for key, label in FIGURES:
        cells = []
        for c in present:
            v = med[c].get(key)
            cells.append("-" if v is None else f"{v:,.1f}")
        if any(x != "-" for x in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")
    refs = {
        "go": ("go-dqlite", "go"),
        "floor": ("dqlite-rs-floor", "blocking"),
        "py": ("dqlite-client-py", "python3.13"),
    }
    print("\n| target | tokio | smol |")
    print("| --- | --- | --- |")
    for name, ours, ref, ref_key, bound, lower in TARGETS:
        ref_runs = runs.get(refs[ref], {}).get(ref_key, [])
        cells = []
        for rt in ("tokio", "smol"):
            our_runs = runs.get(("dqlite-rs", rt), {}).get(ours, [])
            if not our_runs or not ref_runs:
                cells.append("-")
                continue
            ratio = statistics.median(our_runs) / statistics.median(ref_runs)
            met = ratio <= bound if lower else ratio >= bound
            # Round by round (the i-th run of each client ran back to back).
            per_round = [o / r for o, r in zip(our_runs, ref_runs) if r]
            spread = f" (rounds {min(per_round):.2f}-{max(per_round):.2f})" if per_round else ""
            cells.append(f"{ratio:.2f}x{spread} {'met' if met else 'NOT met'}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
