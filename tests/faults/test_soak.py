"""Soak: thousands of mixed tasks (values, errors, slow ones, cancellations, joblib calls) on 2 nodes.

Afterwards the pool is healthy, every outcome is accounted for, and neither the client's nor the workers' memory
has grown. Bounded: SKYWARD_SOAK_SECONDS (default 25).
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import CancelledError

import pytest
from joblib import Parallel, delayed

import skyward as sky


def mixed(kind: str, index: int) -> int:
    if kind == "raise":
        raise ValueError(f"planned failure {index}")
    if kind == "slow":
        time.sleep(0.1)
    return index * 2


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _round(pool: sky.ComputePool, rng: random.Random, size: int) -> dict[str, int]:
    plan = [
        rng.choices(["value", "raise", "slow", "cancel"], weights=[70, 10, 10, 10])[0] for _ in range(size)
    ]
    futures = []
    for index, kind in enumerate(plan):
        future = pool.submit(mixed, "value" if kind == "cancel" else kind, index)
        if kind == "cancel":
            future.cancel()
        futures.append(future)
    tally = {"value": 0, "raise": 0, "cancelled": 0, "late_cancel": 0}
    for index, (kind, future) in enumerate(zip(plan, futures, strict=True)):
        try:
            value = future.result(timeout=60)
        except CancelledError:
            assert kind == "cancel", f"task {index} ({kind}) was cancelled"
            tally["cancelled"] += 1
        except ValueError as exc:
            assert kind == "raise" and str(exc) == f"planned failure {index}"
            tally["raise"] += 1
        else:
            assert value == index * 2
            tally["late_cancel" if kind == "cancel" else "value"] += 1
    return tally


def test_soak_mixed_work_leaves_a_healthy_pool_and_flat_memory() -> None:
    budget = float(os.environ.get("SKYWARD_SOAK_SECONDS", "25"))
    rng = random.Random(7)
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.joblib()]) as pool:
        pids = [os.getpid()] + [n.pid for n in pool.nodes]
        totals: dict[str, int] = {}
        baseline: list[float] | None = None
        rounds = 0
        started = time.monotonic()
        while time.monotonic() - started < budget:
            for key, count in _round(pool, rng, 400).items():
                totals[key] = totals.get(key, 0) + count
            # a joblib call that fails part-way, then one that succeeds on all slots
            with pytest.raises(ValueError):
                Parallel(n_jobs=-1)(delayed(mixed)("raise" if i == 150 else "value", i) for i in range(300))
            assert Parallel(n_jobs=-1)(delayed(mixed)("value", i) for i in range(300)) == [
                2 * i for i in range(300)
            ]
            rounds += 1
            if rounds == 2:  # warm: imports done, caches filled
                baseline = [rss_mb(pid) for pid in pids]
        final = [rss_mb(pid) for pid in pids]
        assert pool.total_slots == 8 and len(pool.nodes) == 2
        scheduler = pool._scheduler
        assert scheduler is not None and scheduler.queued == 0
        assert all(not node.running for node in scheduler.nodes), "tasks still counted as running"
        assert sorted(set(sky.compute(os.getpid).__call__() @ pool)) == sorted(pids[1:])
    print(
        f"\nsoak: {rounds} rounds, {sum(totals.values())} tasks {totals}; RSS MB start {baseline} end {final}"
    )
    assert rounds >= 3 and totals["raise"] > 0 and totals["cancelled"] > 0 and totals["value"] > 1000
    assert baseline is not None
    for before, after in zip(baseline, final, strict=True):
        assert after - before < max(40.0, 0.25 * before), (
            f"memory grew from {before:.0f} MB to {after:.0f} MB"
        )
