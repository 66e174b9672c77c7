#!/usr/bin/env python3
"""Reads the JSON lines of bench/peers/compare.sh (or failover.sh) on stdin and prints, per placement and per
client, the median of every figure over the rounds, then each target's ratio against
go-dqlite, the Python dqlite-client or the floor, from the same run, with the spread of the
round-by-round ratios, as Markdown tables. Lines without a placement (workload f, run once)
are shown with every placement.

The Go peer runs built against more than one go-dqlite (bench/peers/lib.sh: 1.11.5 from
bookworm, 3.0.x from forky); its lines carry go_dqlite_version and go_version, and each build
is a column of its own, "go-dqlite VERSION (goX.Y.Z)", newest first. The targets' "go"
reference is the newest go-dqlite present; each go target gets a further row per older one.
Lines without go_dqlite_version (older runs) make the one column "go-dqlite (go)"."""

import collections
import json
import statistics
import sys

CLIENTS = [
    ("dqlite-rs", "tokio"),
    ("dqlite-rs", "tokio, cache off"),
    ("dqlite-rs", "smol"),
    ("sqlx-dqlite", "tokio"),
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
    ("g_kill_to_ack_ms", "g leader killed -> first ack (ms)"),
    ("g_ready_to_ack_ms", "g cluster takes writes -> first ack, the client's share (ms)"),
    ("g_ready_to_ack_mean_ms", "g the client's share, mean of the kills (ms)"),
    ("g_ready_to_ack_max_ms", "g the client's share, longest (ms)"),
    ("g_election_ms", "g leader killed -> new leader elected (ms)"),
    ("g_ready_ms", "g leader killed -> cluster takes writes (ms)"),
    ("g_write_errors", "g failed writes (all kills)"),
    ("h64_qps", "h 64 tasks, pool of 8 (queries/s)"),
    ("h64_acquire_p99_us", "h 64 tasks, acquire wait p99 (µs)"),
    ("h64_call_p99_us", "h 64 tasks, whole call p99 (µs)"),
    ("h64_fairness", "h 64 tasks, slowest task's share"),
    ("h512_qps", "h 512 tasks, pool of 8 (queries/s)"),
    ("h512_acquire_p99_us", "h 512 tasks, acquire wait p99 (µs)"),
    ("h512_call_p99_us", "h 512 tasks, whole call p99 (µs)"),
    ("h512_fairness", "h 512 tasks, slowest task's share"),
    ("i_write_mb_s", "i 10 MiB BLOB write (MB/s)"),
    ("i_read_mb_s", "i 10 MiB BLOB read (MB/s)"),
    ("j_cold_pool_ms", "j pool of 16 from cold (ms)"),
    ("b_server_us_per_insert", "b servers' CPU per insert (µs)"),
    ("server_cpu_ms", "servers' CPU, the run without b (ms)"),
]
# (name, our figure, reference client, reference figure, bound, lower is better)
TARGETS = [
    ("a p50 <= 0.9x go", "a_p50_us", "go", "a_p50_us", 0.9, True),
    ("b one at a time <= 0.6x go", "b_serial_ms", "go", "b_serial_ms", 0.6, True),
    ("b one at a time <= 0.5x go (statement cache)", "b_serial_ms", "go", "b_serial_ms", 0.5, True),
    ("b pipelined <= 0.15x go", "b_pipelined_ms", "go", "b_serial_ms", 0.15, True),
    ("c wall <= 1.05x floor", "c_wall_ms", "floor", "c_wall_ms", 1.05, True),
    ("c client CPU <= 0.3x go", "c_cpu_ms", "go", "c_cpu_ms", 0.3, True),
    ("d >= 1.2x go", "d_qps", "go", "d_qps", 1.2, False),
    ("e <= 0.9x go", "e_first_result_ms", "go", "e_first_result_ms", 0.9, True),
    # g: the client's share of a failover. Its median is often a millisecond either way (the
    # client is asking when the cluster starts taking writes) and a ratio of such figures says
    # nothing, so the target is on the mean over the kills. Kill to first ack is the servers'
    # election, which no client moves: it is in the figures, not a target.
    ("g client's share (mean) <= 0.8x go", "g_ready_to_ack_mean_ms", "go", "g_ready_to_ack_mean_ms", 0.8, True),
    ("h 64 throughput >= 1.2x go", "h64_qps", "go", "h64_qps", 1.2, False),
    ("h 64 call p99 <= go", "h64_call_p99_us", "go", "h64_call_p99_us", 1.0, True),
    ("h 512 throughput >= 1.2x go", "h512_qps", "go", "h512_qps", 1.2, False),
    ("h 512 call p99 <= go", "h512_call_p99_us", "go", "h512_call_p99_us", 1.0, True),
    ("i write >= 1.0x go", "i_write_mb_s", "go", "i_write_mb_s", 1.0, False),
    ("i read >= 1.0x go", "i_read_mb_s", "go", "i_read_mb_s", 1.0, False),
    # At least 3x faster than the Python client on every workload. It has no streaming: its c
    # keeps every row, as our c_fetch does.
    ("a p50 <= 1/3 python", "a_p50_us", "py", "a_p50_us", 1 / 3, True),
    ("b one at a time <= 1/3 python", "b_serial_ms", "py", "b_serial_ms", 1 / 3, True),
    ("c all rows, wall <= 1/3 python", "c_fetch_wall_ms", "py", "c_fetch_wall_ms", 1 / 3, True),
    ("c all rows, CPU <= 1/3 python", "c_fetch_cpu_ms", "py", "c_fetch_cpu_ms", 1 / 3, True),
    ("d >= 3x python", "d_qps", "py", "d_qps", 3.0, False),
    ("e <= 1/3 python", "e_first_result_ms", "py", "e_first_result_ms", 1 / 3, True),
]


def client_of(j):
    """The client's name; the Go peer's with the go-dqlite version it was built against."""
    client = j.get("client")
    if client == "go-dqlite" and j.get("go_dqlite_version"):
        client = f"go-dqlite {j['go_dqlite_version']}"
    return client


def key_of(j):
    """The client a JSON line belongs to; the client without its statement cache apart, and
    each go-dqlite build apart (with its Go version as the runtime)."""
    runtime = j.get("runtime")
    if j.get("client") == "dqlite-rs" and j.get("statement_cache") == 0:
        runtime = f"{runtime}, cache off"
    if j.get("client") == "go-dqlite" and j.get("go_dqlite_version"):
        runtime = j.get("go_version", runtime)
    return (client_of(j), runtime)


def version_order(name):
    """Sort key putting the newest go-dqlite first ("go-dqlite 3.0.4" before "go-dqlite
    1.11.5"); the unversioned "go-dqlite" last."""
    version = name.split(" ", 1)[1] if " " in name else ""
    try:
        parts = tuple(int(x) for x in version.split("."))
    except ValueError:
        parts = ()
    return tuple(-x for x in parts) + (0 if parts else 1,)


def go_clients(keys):
    """The go-dqlite columns among keys, newest go-dqlite first."""
    gos = [k for k in keys if k[0] == "go-dqlite" or k[0].startswith("go-dqlite ")]
    return sorted(gos, key=lambda k: version_order(k[0]))


def main():
    by_transport = "--transports" in sys.argv[1:]
    lines = [json.loads(x) for x in (y.strip() for y in sys.stdin) if x.startswith("{")]
    servers = sorted({j["server_version"] for j in lines if "server_version" in j})
    if servers:
        print("Server: dqlite " + ", ".join(servers))
    placements = sorted({j["placement"] for j in lines if "placement" in j}) or [None]
    for placement in placements:
        picked = [j for j in lines if j.get("placement") in (placement, None)]
        if placement:
            print(f"\n### {placement}\n")
        if by_transport:
            transports(picked)
        else:
            table(picked)


def transports(lines):
    """bench/peers/tls.sh: each client over plaintext and TLS, and the TLS/plaintext ratio;
    with the proxied plaintext cluster's runs, also that baseline and TLS against it."""
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    for j in lines:
        key = (client_of(j), j.get("transport", "tcp"))
        for k, v in j.items():
            if isinstance(v, (int, float)) and k != "statement_cache":
                runs[key][k].append(v)
    med = {key: {k: statistics.median(v) for k, v in f.items()} for key, f in runs.items()}
    names = ["dqlite-rs"] + [c for c, _ in go_clients({(c, "") for c, _ in med})]
    clients = [c for c in names if (c, "tcp") in med and (c, "tls") in med]
    proxied = all((c, "tcp-proxied") in med for c in clients)
    rounds = max((len(v) for f in runs.values() for v in f.values()), default=0)
    print(f"Medians of {rounds} rounds.\n")
    per = ["plaintext", "TLS", "ratio"]
    if proxied:
        per += ["plaintext, proxied", "TLS / proxied"]
    head = " | ".join(f"{c} {p}" for c in clients for p in per)
    print(f"| figure | {head} |")
    print("| --- |" + " --- |" * (len(per) * len(clients)))
    for key, label in FIGURES:
        cells = []
        for c in clients:
            plain, tls = med[(c, "tcp")].get(key), med[(c, "tls")].get(key)
            via = med.get((c, "tcp-proxied"), {}).get(key)
            if plain is None or tls is None:
                cells += ["-"] * len(per)
                continue
            cells += [f"{plain:,.1f}", f"{tls:,.1f}", f"{tls / plain:.2f}x" if plain else "-"]
            if proxied:
                cells += ["-", "-"] if via is None else [
                    f"{via:,.1f}", f"{tls / via:.2f}x" if via else "-"]
        if any(x != "-" for x in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")


def table(lines):
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    for j in lines:
        key = key_of(j)
        for k, v in j.items():
            if isinstance(v, (int, float)) and k != "statement_cache":
                runs[key][k].append(v)
    med = {
        key: {k: statistics.median(v) for k, v in figs.items()}
        for key, figs in runs.items()
    }
    rounds = max((len(v) for f in runs.values() for v in f.values()), default=0)
    gos = go_clients(med)
    present = []
    for c in CLIENTS:
        if c == ("go-dqlite", "go"):
            present += gos
        elif c in med:
            present.append(c)
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
    # Each reference: its columns, the first the one the target is stated against.
    refs = {
        "go": gos or [("go-dqlite", "go")],
        "floor": [("dqlite-rs-floor", "blocking")],
        "py": [("dqlite-client-py", "python3.13")],
    }
    ours = ["tokio", "tokio, cache off", "smol"]
    if len(gos) > 1:
        print(f"\nThe go targets are against {gos[0][0]}; each is followed by its ratio against "
              + ", ".join(g[0] for g in gos[1:]) + ".")
    print("\n| target | " + " | ".join(ours) + " |")
    print("| --- |" + " --- |" * len(ours))
    for name, our_key, ref, ref_key, bound, lower in TARGETS:
        for i, ref_client in enumerate(refs[ref]):
            row = name
            if i > 0:
                row = f"… against {ref_client[0]}"
            elif ref == "go" and ref_client[0] != "go-dqlite":
                row = f"{name} ({ref_client[0]})"
            ratio_row(runs, row, our_key, ref_client, ref_key, bound, lower, ours)


def ratio_row(runs, name, our_key, ref_client, ref_key, bound, lower, ours):
    """One target row: each of our runtimes' ratio against the reference client."""
    ref_runs = runs.get(ref_client, {}).get(ref_key, [])
    cells = []
    for rt in ours:
        our_runs = runs.get(("dqlite-rs", rt), {}).get(our_key, [])
        if not our_runs or not ref_runs:
            cells.append("-")
            continue
        ratio = statistics.median(our_runs) / statistics.median(ref_runs)
        met = ratio <= bound if lower else ratio >= bound
        # Round by round (the i-th run of each client ran back to back).
        per_round = [o / r for o, r in zip(our_runs, ref_runs) if r]
        spread = f" (rounds {min(per_round):.2f}-{max(per_round):.2f})" if per_round else ""
        cells.append(f"{ratio:.2f}x{spread} {'met' if met else 'NOT met'}")
    # A target the run did not measure (failover.sh runs g alone) is left out.
    if any(c != "-" for c in cells):
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
