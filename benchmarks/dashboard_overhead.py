"""What the dashboard costs: tiny-task throughput with the dashboard open (polled once a second) and off.

    uv run python benchmarks/dashboard_overhead.py [--calls 5000] [--rounds 3]

Each round runs the same tiny calls on a pool without the dashboard, then on one with it open and a separate
process fetching its data once a second, as the page does (so the reader's own parsing is not counted against
the client); rounds alternate, and the medians and every raw figure are printed. The target is a drop under 3 %
in tasks/s. Pool start-up is outside the timings. Figures are reported, never asserted (a shared machine is
noisy: compare the two columns of one run). Client CPU per task (this process only: nodes are other processes)
is the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import skyward as sky

POLLER = """
import sys, time, urllib.request
base, token = sys.argv[1].split("?token=")
since = 0.0
while True:
    with urllib.request.urlopen(f"{base}api/snapshot?token={token}&since={since}") as reply:
        reply.read()
    since = time.time() - 1.5
    time.sleep(1.0)
"""


def noop(x: int) -> int:
    return x


remote_noop = sky.compute(noop)


def one_round(dashboard: bool, calls: int, nodes: int, concurrency: int) -> tuple[float, float]:
    """(tasks per second, client CPU microseconds per task) for `calls` tiny calls."""
    with sky.ComputePool(
        nodes=nodes, worker=sky.Worker(concurrency=concurrency), dashboard=dashboard
    ) as pool:
        for future in [remote_noop(i) > pool for i in range(200)]:  # warm up
            future.result()
        poller = None
        if dashboard:
            poller = subprocess.Popen([sys.executable, "-c", POLLER, pool.dashboard_url or ""])
            time.sleep(1.5)  # it is polling
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            for future in [remote_noop(i) > pool for i in range(calls)]:
                future.result()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            if poller is not None:
                poller.terminate()
                poller.wait()
    return calls / wall, cpu / calls * 1e6


def stats_cost(replies_count: int = 200_000) -> float:
    """CPU microseconds `pool.stats` spends on one reply (paid with or without the dashboard)."""
    from skyward import reply
    from skyward.pool_stats import NodeStats, PoolStats

    stats = PoolStats([NodeStats(i, f"node-{i}", slots=4) for i in range(4)])
    ok = reply.Ok(b"")
    started = time.process_time()
    for i in range(replies_count):
        stats.replied(i & 3, "f", float(i), i + 0.5, ok)
    return (time.process_time() - started) / replies_count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for dashboard in (False, True) if round_ % 2 == 0 else (True, False):
            figures[dashboard].append(one_round(dashboard, args.calls, args.nodes, args.concurrency))
            rate, cpu = figures[dashboard][-1]
            print(f"round {round_ + 1} dashboard {'on ' if dashboard else 'off'}: {rate:8.0f} tasks/s, "
                  f"{cpu:6.1f} us client CPU/task", flush=True)  # fmt: skip
    off_rate = statistics.median(r for r, _ in figures[False])
    on_rate = statistics.median(r for r, _ in figures[True])
    off_cpu = statistics.median(c for _, c in figures[False])
    on_cpu = statistics.median(c for _, c in figures[True])
    print(
        f"\n{args.calls} tiny calls, {args.nodes} Local nodes x {args.concurrency} slots, {args.rounds} rounds"
    )
    print(f"{'':22}{'off':>10}{'on (polled 1/s)':>18}{'change':>10}")
    print(f"{'tasks/s (median)':22}{off_rate:10.0f}{on_rate:18.0f}{(on_rate / off_rate - 1) * 100:9.1f}%")
    print(f"{'client us/task (median)':22}{off_cpu:10.1f}{on_cpu:18.1f}{(on_cpu / off_cpu - 1) * 100:9.1f}%")
    print(
        "raw tasks/s off:", [round(r) for r, _ in figures[False]], "on:", [round(r) for r, _ in figures[True]]
    )
    print("raw client us/task off:", [round(c, 1) for _, c in figures[False]],
          "on:", [round(c, 1) for _, c in figures[True]])  # fmt: skip
    print(f"pool.stats bookkeeping per reply (paid either way): {stats_cost():.2f} us CPU")


if __name__ == "__main__":
    main()
