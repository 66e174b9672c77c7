"""Runs the dqlite-bench workloads with the Python asyncio client dqlite-client (import name
dqliteclient, needs Python >= 3.13) against an existing cluster and prints one JSON line,
with the same workloads and keys as the go-dqlite peer (bench/peers/go/main.go).

Usage: target/peers/pyvenv/bin/python bench/peers/python/bench.py --cluster A,B,C [--workloads abcde]
(bash bench/peers/python/setup.sh makes that interpreter.) The `big` table is the one
dqlite-bench creates (run it first against the same cluster); workload b uses its own table
ins_py. For workload e, pass a follower first.

dqliteclient has no row streaming: a query's rows all arrive in one list, so workload c
fetches the 100 000 rows and then reads every value of every row, and is reported under
dqlite-bench's keys for that (c_fetch_wall_ms, c_fetch_cpu_ms).
"""

import argparse
import asyncio
import resource
import statistics
import sys
import time

import dqliteclient

CLIENT = "dqlite-client-py"
DATABASE = "bench"
BIG_ROWS = 100_000
C_RUNS = 3
E_RUNS = 5
# Per request phase (dial, handshake, each read), as the client applies it.
TIMEOUT_S = 30.0
# The whole run.
RUN_LIMIT_S = 600.0


def fail(msg: object) -> None:
    print(f"pybench: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_ns() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def percentile(sorted_ns: list[int], p: float) -> int:
    return sorted_ns[int((len(sorted_ns) - 1) * p + 0.5)]


async def open_pool(nodes: list[str], max_size: int) -> dqliteclient.ConnectionPool:
    """A pool over the given nodes, in order; it finds the leader itself."""
    return await dqliteclient.create_pool(
        nodes,
        database=DATABASE,
        min_size=1,
        max_size=max_size,
        timeout=TIMEOUT_S,
    )


async def select_one(pool: dqliteclient.ConnectionPool) -> None:
    x = await pool.fetchval("SELECT 1")
    if x != 1:
        raise RuntimeError(f"SELECT 1 returned {x!r}")


async def run(nodes: list[str], w: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    # Like the Go peer's database/sql handle: one pool for every workload; a to c use one
    # connection at a time (the pool keeps reusing its one idle connection), d grows it to 8.
    pool = await open_pool(nodes, 8)
    try:
        if "a" in w:
            lat = []
            for _ in range(2000):
                t = time.perf_counter_ns()
                await select_one(pool)
                lat.append(time.perf_counter_ns() - t)
            lat.sort()
            out.append(("a_p50_us", percentile(lat, 0.5) / 1e3))
            out.append(("a_p99_us", percentile(lat, 0.99) / 1e3))

        if "b" in w:
            await pool.execute("DROP TABLE IF EXISTS ins_py")
            await pool.execute("CREATE TABLE ins_py (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)")
            blob = bytes(16)
            t = time.perf_counter_ns()
            async with pool.acquire() as conn:
                async with conn.transaction():
                    for i in range(10_000):
                        await conn.execute(
                            "INSERT INTO ins_py VALUES (?, ?, ?, ?)",
                            (i, f"name number {i:08d}", i * 0.25, blob),
                        )
            out.append(("b_serial_ms", (time.perf_counter_ns() - t) / 1e6))

        if "c" in w:
            # Three runs in a row (fifteen for the other clients, whose runs are ten times
            # shorter); the figures are the medians.
            walls, cpus = [], []
            for _ in range(C_RUNS):
                t, cpu = time.perf_counter_ns(), cpu_ns()
                rows = await pool.fetchall("SELECT id, a, b, c FROM big WHERE id <= ?", (BIG_ROWS,))
                n = 0
                size = 0
                for id_, a, b, c in rows:
                    # Every value is read, as the Go peer's Scan reads them into typed variables.
                    if type(id_) is not int or type(b) is not float:
                        raise RuntimeError(f"unexpected row types: {id_!r}, {b!r}")
                    size += len(a) + len(c)
                    n += 1
                del rows
                if n != BIG_ROWS or size == 0:
                    raise RuntimeError(f"fetched {n} rows")
                walls.append(time.perf_counter_ns() - t)
                cpus.append(cpu_ns() - cpu)
            # Reported as dqlite-bench's c_fetch (every row kept), not its streamed c.
            out.append(("c_fetch_wall_ms", statistics.median(walls) / 1e6))
            out.append(("c_fetch_cpu_ms", statistics.median(cpus) / 1e6))

        if "d" in w:

            async def worker() -> None:
                for _ in range(250):
                    await select_one(pool)

            t = time.perf_counter_ns()
            async with asyncio.TaskGroup() as tg:
                for _ in range(8):
                    tg.create_task(worker())
            out.append(("d_qps", 2000 / ((time.perf_counter_ns() - t) / 1e9)))
    finally:
        await pool.close()

    if "e" in w and len(nodes) > 1:
        # The caller passes a follower first; the client's own leader detection takes over.
        # Five runs; the figure is the median.
        times = []
        for _ in range(E_RUNS):
            t = time.perf_counter_ns()
            pool2 = await open_pool(nodes, 1)
            try:
                await select_one(pool2)
                times.append(time.perf_counter_ns() - t)
            finally:
                await pool2.close()
        out.append(("e_first_result_ms", statistics.median(times) / 1e6))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cluster", required=True, help="node addresses, comma separated")
    ap.add_argument("--workloads", default="abcde", help="workloads to run (letters a-e)")
    args = ap.parse_args()
    nodes = [a.strip() for a in args.cluster.split(",") if a.strip()]
    if not nodes:
        fail("--cluster needs at least one address")
    for a in nodes:
        try:
            dqliteclient.parse_address(a)
        except ValueError as e:
            fail(e)
    w = args.workloads.replace(",", "")

    async def bounded() -> list[tuple[str, float]]:
        async with asyncio.timeout(RUN_LIMIT_S):
            return await run(nodes, w)

    try:
        figures = asyncio.run(bounded())
    except TimeoutError:
        fail(f"run exceeded {RUN_LIMIT_S:.0f} s")
    except Exception as e:  # noqa: BLE001 - any failure ends the run with its message
        fail(f"{type(e).__name__}: {e}")
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    fields = [f'"client":"{CLIENT}"', f'"runtime":"{runtime}"']
    fields += [f'"{k}":{v:.3f}' for k, v in figures]
    print("{" + ",".join(fields) + "}", flush=True)


if __name__ == "__main__":
    main()
