"""Core dispatch: one call's round trip and many small calls' throughput, beside the transport's floor and the stdlib.

    uv run python benchmarks/bench_core.py [--calls 5000] [--rounds 1000] [--json core.json] [--plot DIR]

Rows, all in one run on this machine:
- casty floor: a raw casty ask of a tiny message (a `Heartbeat`) to the pool's first node, over the pool's own
  mutual-TLS connection, awaited on the pool's I/O loop: no encoding, scheduling, slot or thread hand-off. No
  call on this transport can be faster; skyward's p50 is reported as a multiple of it.
- casty ask from a thread: the same ask sent from the calling thread (`run_coroutine_threadsafe`) and waited
  for there, as every `>>` is: the floor plus two thread hand-offs.
- skyward: 2 Local nodes (thread slots), through `>>` (latency) and `>` (throughput).
- ProcessPoolExecutor with as many workers as skyward has slots.

Figures are reported, never asserted: this machine is shared and noisy, so compare the ratios, not the absolute
numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import skyward as sky
from skyward.ioloop import shared_loop


def noop(x: int) -> int:
    return x


remote_noop = sky.compute(noop)


@dataclass(frozen=True)
class Row:
    """One runner's figures: latency of one call (ms) and calls per second with `calls` in flight (None: not
    measured)."""

    runner: str
    p50_ms: float
    p99_ms: float
    calls_per_s: float | None


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
    """The `q` quantile of sorted `samples` (seconds), in milliseconds."""
    return samples[min(len(samples) - 1, int(q * len(samples)))] * 1e3


def _links(pool: sky.ComputePool) -> list[Any]:
    # Private on purpose: the floor needs the pool's own connections, which no public API hands out.
    links = getattr(pool, "_links", None)
    if not links or not all(hasattr(link, "heartbeat") for link in links):
        raise RuntimeError("bench_core: the pool no longer keeps its links in `_links`; update casty_floor")
    return list(links)


def casty_floor(pool: sky.ComputePool, rounds: int, calls: int) -> tuple[list[float], float]:
    """Raw casty asks on the pool's I/O loop: (sorted round trips in s, asks/s in flight).

    Each ask is a `Heartbeat`, the smallest message a node answers (on its event loop, no slot): what is left
    is casty's encoding, mutual TLS over loopback, the node's mailbox and the reply's way back. Round trips go
    to the first node, one at a time; the `calls` in flight are spread over every node, as skyward's are.
    """
    links = _links(pool)
    link = links[0]

    async def measure() -> tuple[list[float], float]:
        answers = [await link.heartbeat() for _ in range(min(50, rounds))]
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            answers.append(await link.heartbeat())
            samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        answers += await asyncio.gather(*(links[i % len(links)].heartbeat() for i in range(calls)))
        elapsed = time.perf_counter() - started
        if not all(answer is True for answer in answers):  # what was timed must be the node answering
            raise RuntimeError("casty_floor: a node did not answer its heartbeat with True")
        return sorted(samples), calls / elapsed

    return shared_loop().run(measure()).result()


def casty_from_thread(pool: sky.ComputePool, rounds: int) -> list[float]:
    """The floor's ask sent from this thread to the pool's I/O loop and waited for here; sorted seconds."""
    link, io = _links(pool)[0], shared_loop()
    return latencies(lambda: io.run(link.heartbeat()).result(), rounds)


def measure(args: argparse.Namespace) -> list[Row]:
    slots = args.nodes * args.concurrency
    rows: list[Row] = []
    with sky.ComputePool(nodes=args.nodes, worker=sky.Worker(concurrency=args.concurrency)) as pool:
        floor, floor_tput = casty_floor(pool, args.rounds, args.calls)
        rows.append(Row("casty floor (ask on the I/O loop)", percentile(floor, 0.5), percentile(floor, 0.99),
                        floor_tput))  # fmt: skip
        hop = casty_from_thread(pool, args.rounds)
        rows.append(Row("casty ask from a thread", percentile(hop, 0.5), percentile(hop, 0.99), None))
        lat = latencies(lambda: remote_noop(1) >> pool, args.rounds)
        tput = throughput(lambda i: remote_noop(i) > pool, args.calls)
        name = f"skyward ({args.nodes} nodes x {args.concurrency})"
        rows.append(Row(name, percentile(lat, 0.5), percentile(lat, 0.99), tput))
    with ProcessPoolExecutor(slots) as executor:
        lat = latencies(lambda: executor.submit(noop, 1).result(), args.rounds)
        tput = throughput(lambda i: executor.submit(noop, i), args.calls)
        rows.append(Row(f"ProcessPoolExecutor ({slots})", percentile(lat, 0.5), percentile(lat, 0.99), tput))
    return rows


def ratios(rows: list[Row]) -> dict[str, float]:
    """skyward's p50 as a multiple of the floor and of ProcessPoolExecutor's; calls/s likewise."""
    floor, _, ours, ppe = rows
    assert floor.calls_per_s and ours.calls_per_s and ppe.calls_per_s
    return {
        "skyward_p50_vs_floor": ours.p50_ms / floor.p50_ms,
        "skyward_p50_vs_ppe": ours.p50_ms / ppe.p50_ms,
        "skyward_calls_per_s_vs_floor": ours.calls_per_s / floor.calls_per_s,
        "skyward_calls_per_s_vs_ppe": ours.calls_per_s / ppe.calls_per_s,
    }


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    ours = rows[2]
    print(f"{'runner':<36} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>10} {'p50 vs skyward':>15}")
    for row in rows:
        tput = "-" if row.calls_per_s is None else f"{row.calls_per_s:.0f}"
        vs = row.p50_ms / ours.p50_ms
        print(f"{row.runner:<36} {row.p50_ms:>8.3f} {row.p99_ms:>8.3f} {tput:>10} {vs:>14.2f}x")
    r = ratios(rows)
    print(
        f"skyward p50 = {r['skyward_p50_vs_floor']:.2f}x the casty floor, {r['skyward_p50_vs_ppe']:.2f}x "
        f"ProcessPoolExecutor; calls/s = {r['skyward_calls_per_s_vs_floor']:.2f}x the floor's, "
        f"{r['skyward_calls_per_s_vs_ppe']:.2f}x ProcessPoolExecutor's"
    )
    print(f"({args.rounds} sequential round trips for p50/p99; {args.calls} calls in flight for calls/s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000, help="small calls for the throughput figure")
    parser.add_argument("--rounds", type=int, default=1000, help="sequential calls for the latency figure")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--plot", metavar="DIR", help="write DIR/core.svg, a chart of the figures (matplotlib)"
    )
    parser.add_argument("--from-json", metavar="FILE", help="run nothing: plot the figures of FILE")
    parser.add_argument("--note", help="the line under the chart (default: the cores and the date)")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as source:
            result = json.load(source)
    else:
        rows = measure(args)
        print_table(rows, args)
        result = {
            "rows": [asdict(row) for row in rows],
            "ratios": ratios(rows),
            "rounds": args.rounds,
            "calls": args.calls,
            "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
    if args.json and not args.from_json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    if args.plot:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from suite_plot import plot_core  # beside this script; imports matplotlib

        note = args.note or f"bench_core.py; {result['cores']} cores; {result['date']}"
        for path in plot_core(result, args.plot, note):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
