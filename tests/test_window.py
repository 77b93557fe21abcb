"""`pool.window`: at most `limit` tasks of one caller in flight, FIFO, one future per task, on real local nodes."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from proc_utils import max_overlap

import skyward as sky
from skyward.futures import TaskFuture


def span(seconds: float, label: int) -> tuple[int, float, float, int]:
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time(), label


def touch(path: str, seconds: float = 0.0) -> int:
    time.sleep(seconds)
    Path(path).touch()
    return os.getpid()


def fail_after(seconds: float) -> None:
    time.sleep(seconds)
    raise ValueError("task failed")


@pytest.fixture(scope="module")
def pool() -> Iterator[sky.ComputePool]:
    """One node with four thread slots and room for four more in its queue."""
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=4), prefetch=4) as pool:
        yield pool


def test_a_window_keeps_its_limit_in_flight_and_starts_them_in_order(pool: sky.ComputePool) -> None:
    window = pool.window(2)
    futures = [window.submit(span, 0.15, i) for i in range(8)]
    assert window.in_flight == 2 and window.waiting == 6
    results = [f.result(timeout=30) for f in futures]
    assert {pid for pid, *_ in results} == {pool.nodes[0].pid} != {os.getpid()}
    assert max_overlap([(start, end) for _, start, end, _ in results]) == 2  # 4 slots free, 2 used
    assert [label for *_, label in sorted(results, key=lambda r: r[1])] == list(range(8))
    assert window.in_flight == 0 and window.waiting == 0


def test_each_task_has_one_future_with_its_dispatch_and_run_time(pool: sky.ComputePool) -> None:
    window = pool.window(1)
    first, second = window.submit(span, 0.3, 0), window.submit(span, 0.0, 1)
    assert isinstance(second, TaskFuture)
    assert second.dispatched_at is None and second.dispatches == 0  # it waits for the window
    first.result(timeout=30)
    second.result(timeout=30)
    assert second.dispatches == 1 and second.dispatched_at is not None
    assert first.run_seconds is not None and first.run_seconds >= 0.3
    assert second.dispatched_at >= first.dispatched_at + 0.3  # sent when the first one ended


def test_cancelling_a_waiting_task_means_it_never_runs(pool: sky.ComputePool, tmp_path: Path) -> None:
    window = pool.window(1)
    blocker = window.submit(touch, str(tmp_path / "first"), 0.4)
    dropped = window.submit(touch, str(tmp_path / "dropped"))
    kept = window.submit(touch, str(tmp_path / "kept"))
    assert dropped.cancel()
    assert kept.result(timeout=30) == blocker.result(timeout=30) == pool.nodes[0].pid
    assert not (tmp_path / "dropped").exists()


def test_cancel_stops_the_window_waiting_and_running(pool: sky.ComputePool, tmp_path: Path) -> None:
    window = pool.window(2)
    futures = [window.submit(touch, str(tmp_path / f"t{i}"), 0.5) for i in range(6)]
    time.sleep(0.2)
    assert window.cancel() == 6 and all(f.cancelled() for f in futures)
    late = window.submit(touch, str(tmp_path / "late"))
    assert late.cancelled() and window.cancelled
    # the pool goes on: the two running ones hold their slots until they end, the others never start
    assert pool.submit(touch, str(tmp_path / "after")).result(timeout=30) == pool.nodes[0].pid
    time.sleep(0.6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after", "t0", "t1"]


def test_stop_on_error_starts_nothing_more_until_cancelled(pool: sky.ComputePool, tmp_path: Path) -> None:
    window = pool.window(2, stop_on_error=True)
    failing = window.submit(fail_after, 0.1)
    running = window.submit(touch, str(tmp_path / "running"), 0.6)
    waiting = [window.submit(touch, str(tmp_path / f"w{i}")) for i in range(4)]
    with pytest.raises(ValueError, match="task failed"):
        failing.result(timeout=30)
    assert window.stopped and not window.cancelled
    assert running.result(timeout=30) == pool.nodes[0].pid  # admitted before the failure: it goes on
    late = window.submit(touch, str(tmp_path / "late"))
    time.sleep(0.3)
    assert not any(f.done() for f in [*waiting, late])  # they wait: the failure was the first outcome seen
    assert window.cancel() == 5
    for future in [*waiting, late]:
        with pytest.raises(CancelledError):
            future.result(timeout=30)
    assert [p.name for p in tmp_path.iterdir()] == ["running"]


def test_an_error_does_not_stop_an_ordinary_window(pool: sky.ComputePool) -> None:
    window = pool.window(1)
    failing, after = window.submit(fail_after, 0.0), window.submit(span, 0.0, 1)
    with pytest.raises(ValueError):
        failing.result(timeout=30)
    assert after.result(timeout=30)[3] == 1 and not window.cancelled


def test_without_prefetch_tasks_wait_on_the_client_until_a_slot_is_idle() -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1), prefetch=2) as pool:
        window = pool.window(None, prefetch=False)
        futures = [window.submit(span, 0.3, i) for i in range(3)]
        time.sleep(0.15)
        assert pool.stats.tasks_sent == 1  # an ordinary submit would have filled the node's queue
        results = [f.result(timeout=30) for f in futures]
        assert [r[3] for r in sorted(results, key=lambda r: r[1])] == [0, 1, 2]
        for earlier, later in itertools.pairwise(futures):
            # each was sent only once the one before had come back: it started when it was sent
            assert earlier.dispatched_at is not None and earlier.run_seconds is not None
            assert later.dispatched_at is not None
            assert later.dispatched_at >= earlier.dispatched_at + earlier.run_seconds


def test_window_arguments_are_checked(pool: sky.ComputePool) -> None:
    for limit in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="limit"):
            pool.window(limit)  # type: ignore[arg-type]
    window = pool.window(2)
    with pytest.raises(TypeError):
        window.submit(touch, threading.Lock())  # cannot be serialized: refused at once, as by pool.submit
    assert window.in_flight == 0 and window.waiting == 0
