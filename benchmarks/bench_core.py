"""Core dispatch: one call's round trip and many small calls' throughput, skyward beside the stdlib.

    uv run python benchmarks/bench_core.py [--calls 5000] [--rounds 1000]

skyward: 2 Local nodes (thread slots), through `>>` and `>`. Peer, in the same run:
`concurrent.futures.ProcessPoolExecutor` with as many workers as skyward has slots. Figures are reported, never
asserted: this machine is shared and noisy, so compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

import skyward as sky


def noop(x: int) -> int:
    return x


remote_noop = sky.compute(noop)


def latencies(call: Callable[[], object], rounds: int) -> list[float]:
    for _ in range(min(50, rounds)):  # warm up connections and caches
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return sorted(samples)


def throughput(submit: Callable[[int], Future[int]], calls: int) -> float:
    started = time.perf_counter()
    futures = [submit(i) for i in range(calls)]
    for future in futures:
        future.result()
    return calls / (time.perf_counter() - started)


def percentile(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(q * len(samples)))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000, help="small calls for the throughput figure")
    parser.add_argument("--rounds", type=int, default=1000, help="sequential calls for the latency figure")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    slots = args.nodes * args.concurrency
    rows: list[tuple[str, float, float, float]] = []

    with sky.ComputePool(nodes=args.nodes, worker=sky.Worker(concurrency=args.concurrency)) as pool:
        lat = latencies(lambda: remote_noop(1) >> pool, args.rounds)
        tput = throughput(lambda i: remote_noop(i) > pool, args.calls)
        rows.append(
            (
                f"skyward ({args.nodes} nodes x {args.concurrency})",
                percentile(lat, 0.5),
                percentile(lat, 0.99),
                tput,
            )
        )

    with ProcessPoolExecutor(slots) as executor:
        lat = latencies(lambda: executor.submit(noop, 1).result(), args.rounds)
        tput = throughput(lambda i: executor.submit(noop, i), args.calls)
        rows.append((f"ProcessPoolExecutor ({slots})", percentile(lat, 0.5), percentile(lat, 0.99), tput))

    ours = rows[0]
    print(
        f"{'runner':<32} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>10} {'p50 vs us':>10} {'calls/s vs us':>14}"
    )
    for name, p50, p99, tput in rows:
        print(
            f"{name:<32} {p50:>8.3f} {p99:>8.3f} {tput:>10.0f} {p50 / ours[1]:>9.2f}x {tput / ours[3]:>13.2f}x"
        )
    print(f"(median of {args.rounds} sequential round trips; {args.calls} calls in flight for calls/s)")


if __name__ == "__main__":
    main()
