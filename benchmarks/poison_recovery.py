"""Poison tasks and crashed workers: how long until the error, and until every slot is back.

    uv run python benchmarks/poison_recovery.py [--repeats 3] [--crashes 3]

Local pool of 2 nodes x 2 slots. For thread and process slots, a task that calls ``os._exit(3)`` is submitted
beside 8 good tasks (0.2 s each); reported: seconds from its submit to its `sky.WorkerCrashed`, and to
``pool.total_slots`` being full again (thread slots: the crashed agents restarted; process slots: the agent
lives on and replaces the slot process, so the node never leaves). Also: an agent killed with SIGKILL while
idle, until its node is back. Medians of ``--repeats`` runs; figures only (a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time

import skyward as sky


@sky.compute
def poison() -> None:
    print("poison: exiting", file=sys.stderr, flush=True)
    os._exit(3)


@sky.compute
def good(i: int) -> int:
    time.sleep(0.2)
    return i * i


def _wait_full(pool: sky.ComputePool) -> None:
    while pool.total_slots < pool.cluster.nodes * pool.concurrency:
        time.sleep(0.01)


def poison_run(executor: str, crashes: int) -> tuple[float, float]:
    worker = sky.Worker(concurrency=2, executor=executor)
    local = sky.Local(forward_output=False)
    with sky.ComputePool(provider=local, nodes=2, worker=worker, max_task_crashes=crashes) as pool:
        started = time.monotonic()
        bad = poison() > pool
        goods = [good(i) > pool for i in range(8)]
        try:
            bad.result(timeout=120)
        except sky.WorkerCrashed:
            to_error = time.monotonic() - started
        else:
            raise AssertionError("the poison task returned")
        _wait_full(pool)
        to_full = time.monotonic() - started
        assert [f.result(timeout=120) for f in goods] == [i * i for i in range(8)]
    return to_error, to_full


def kill_run() -> float:
    local = sky.Local(forward_output=False)
    with sky.ComputePool(provider=local, nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        victim = pool.nodes[1].pid
        started = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while pool.total_slots < 4 or victim in {n.pid for n in pool.nodes}:
            time.sleep(0.01)
        return time.monotonic() - started


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crashes", type=int, default=3, help="max_task_crashes")
    args = parser.parse_args()
    for executor in ("thread", "process"):
        runs = [poison_run(executor, args.crashes) for _ in range(args.repeats)]
        error = statistics.median(r[0] for r in runs)
        full = statistics.median(r[1] for r in runs)
        print(
            f"{executor:7s} slots, max_task_crashes={args.crashes}: WorkerCrashed {error:.2f}s after submit, "
            f"all slots back at {full:.2f}s (median of {args.repeats})",
            flush=True,
        )
    back = statistics.median(kill_run() for _ in range(args.repeats))
    print(
        f"idle agent killed with SIGKILL: node back with its slots after {back:.2f}s "
        f"(median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
