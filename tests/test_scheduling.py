"""The scheduler: slots are never exceeded, FIFO when full, least-loaded first, cancellation, node loss.

Scheduling is the subject here, not the network: most pools run on in-process nodes (`skyward.inprocess`: the
real agent and thread slots, no processes), and a task tells where it ran by its slot thread (`current_node`).
What needs real processes (a killed agent, process slots) runs on `sky.Local`.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from proc_utils import max_overlap

import skyward as sky
from skyward.inprocess import InProcess, current_node


def in_process(nodes: int, concurrency: int, **options: object) -> sky.ComputePool:
    return sky.ComputePool(
        provider=InProcess(),
        nodes=nodes,
        worker=sky.Worker(concurrency=concurrency),
        **options,  # type: ignore[arg-type]
    )


@sky.compute
def timed(seconds: float, index: int) -> tuple[str | None, float, float, int]:
    start = time.time()
    time.sleep(seconds)
    return current_node(), start, time.time(), index


@sky.compute
def touch(path: str, seconds: float = 0.0) -> tuple[int, str | None]:
    time.sleep(seconds)
    Path(path).touch()
    return os.getpid(), current_node()


@sky.compute
def mark_then_touch(started: str, path: str, seconds: float) -> int:
    Path(started).touch()
    time.sleep(seconds)
    Path(path).touch()
    return os.getpid()


def test_a_node_never_runs_more_tasks_than_its_slots() -> None:
    with in_process(2, 3) as pool:
        results = [f.result() for f in [timed(0.1, i) > pool for i in range(30)]]
        names = {n.name for n in pool.nodes}
    by_node: dict[str | None, list[tuple[float, float]]] = {}
    for node, start, end, _ in results:
        by_node.setdefault(node, []).append((start, end))
    assert set(by_node) == names
    overlaps = {node: max_overlap(spans) for node, spans in by_node.items()}
    assert all(o <= 3 for o in overlaps.values()), overlaps
    assert all(o == 3 for o in overlaps.values()), f"slots left idle: {overlaps}"


def test_tasks_wait_fifo_when_every_slot_is_busy() -> None:
    with in_process(1, 1) as pool:
        results = [f.result() for f in [timed(0.02, i) > pool for i in range(15)]]
    by_start = [index for *_, index in sorted(results, key=lambda r: r[1])]
    assert by_start == list(range(15))


def test_least_loaded_node_gets_the_next_task() -> None:
    with in_process(2, 2) as pool:
        first, second = timed(0.3, 0) > pool, timed(0.3, 1) > pool
        assert {first.result()[0], second.result()[0]} == {n.name for n in pool.nodes}


def test_cancelling_a_queued_future_means_it_never_runs(tmp_path: Path) -> None:
    with in_process(1, 1) as pool:
        blocker = touch(str(tmp_path / "first"), 0.5) > pool
        queued = touch(str(tmp_path / "second")) > pool
        assert queued.cancel()
        blocker.result()
        assert (touch(str(tmp_path / "third")) >> pool)[1] == pool.nodes[0].name
    assert (tmp_path / "first").exists() and (tmp_path / "third").exists()
    assert not (tmp_path / "second").exists()


def test_a_task_submitted_behind_cancelled_waiting_ones_runs_when_a_slot_frees(tmp_path: Path) -> None:
    # Behind a waiting queue a submission does not look for a node (the head could not be placed); when the
    # slot frees, the cancelled heads are dropped and the task behind them runs, once, in order.
    with in_process(1, 1, prefetch=0) as pool:
        blocker = touch(str(tmp_path / "blocker"), 0.5) > pool
        waiting = [touch(str(tmp_path / f"cancelled-{i}")) > pool for i in range(3)]
        assert all(f.cancel() for f in waiting)
        later = [timed(0.01, i) > pool for i in range(4)]
        blocker.result(timeout=30)
        results = [f.result(timeout=30) for f in later]
    assert [index for *_, index in sorted(results, key=lambda r: r[1])] == [0, 1, 2, 3]
    assert not any((tmp_path / f"cancelled-{i}").exists() for i in range(3))


def test_cancel_all_frees_the_slots_for_the_next_call() -> None:
    with in_process(1, 2) as pool:
        futures = [timed(0.3, i) > pool for i in range(20)]
        time.sleep(0.1)
        cancelled = pool.cancel_all()
        assert cancelled == 20 and all(f.cancelled() for f in futures)
        started = time.monotonic()
        again = [f.result() for f in [timed(0.05, i) > pool for i in range(2)]]
        # The two running 0.3 s tasks finish, the 18 queued ones never start.
        assert time.monotonic() - started < 1.0
        assert len(again) == 2


def test_tasks_of_a_lost_node_are_sent_to_the_survivors() -> None:
    # Its "machine" vanishes: asks in flight fail as a dropped connection's, and it is never restarted (a
    # killed process on real nodes: test_when_every_node_is_lost_calls_fail_fast; restarts:
    # tests/test_poison_tasks.py).
    provider = InProcess()
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        futures = [timed(0.2, i) > pool for i in range(24)]
        time.sleep(0.3)
        provider.launched[-1].lose(1)
        results = [f.result(timeout=60) for f in futures]
        assert sorted(r[3] for r in results) == list(range(24))
        assert {r[0] for r in results[-8:]} == {pool.nodes[0].name}
        assert pool.total_slots == 2
        assert [n.name for n in pool.nodes] == [pool.nodes[0].name]


def test_when_every_node_is_lost_calls_fail_fast() -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1), restart_nodes=False) as pool:
        futures = [timed(1.0, i) > pool for i in range(3)]
        time.sleep(0.2)
        os.kill(pool.nodes[0].pid, signal.SIGKILL)
        started = time.monotonic()
        for future in futures:
            with pytest.raises(sky.NodeLost):
                future.result(timeout=30)
        assert time.monotonic() - started < 10
        with pytest.raises(sky.NodeLost):
            timed(0, 0) > pool


def test_cancelling_a_running_task_stops_it_in_a_process_slot(tmp_path: Path) -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1, executor="process")) as pool:
        assert touch(str(tmp_path / "warm")) >> pool  # the slot process is up
        running = touch(str(tmp_path / "never"), 3.0) > pool
        time.sleep(0.5)  # it is sleeping inside the slot process now
        started = time.monotonic()
        assert running.cancel()
        # The slot is free again long before the 3 s task would have ended.
        slot_pid, _ = touch(str(tmp_path / "after")) >> pool
        assert time.monotonic() - started < 2.0
        assert slot_pid != pool.nodes[0].pid
    time.sleep(max(0.0, 3.0 - (time.monotonic() - started) + 0.3))
    assert (tmp_path / "after").exists()
    assert not (tmp_path / "never").exists(), "the cancelled task ran to its end"


def test_a_crashing_process_slot_is_replaced(tmp_path: Path) -> None:
    @sky.compute
    def die() -> None:
        os._exit(7)

    worker = sky.Worker(concurrency=1, executor="process")
    with sky.ComputePool(nodes=1, worker=worker, max_task_crashes=1) as pool:
        with pytest.raises(sky.WorkerCrashed, match="exit code 7"):
            die() >> pool
        assert (touch(str(tmp_path / "after")) >> pool)[0] not in (pool.nodes[0].pid, os.getpid())


@sky.compute
def labelled(seconds: float, label: str) -> tuple[str, str | None, float]:
    time.sleep(seconds)
    return label, current_node(), time.time()


def test_the_next_task_waits_on_the_node_while_its_slot_is_busy() -> None:
    with in_process(1, 1, prefetch=1) as pool:
        assert pool.prefetch == 1 and pool.total_slots == 1
        first = timed(0.5, 0) > pool
        second = timed(0.0, 1) > pool
        third = timed(0.0, 2) > pool
        time.sleep(0.2)
        assert pool.stats.tasks_sent == 2, "the second task should already sit in the node's queue"
        results = [f.result() for f in (first, second, third)]
    assert results[1][1] >= results[0][2], "the queued task ran before the slot was free"


def test_prefetch_zero_keeps_tasks_on_the_client() -> None:
    with in_process(1, 1, prefetch=0) as pool:
        first = timed(0.3, 0) > pool
        second = timed(0.0, 1) > pool
        time.sleep(0.1)
        assert pool.stats.tasks_sent == 1
        first.result(), second.result()


def test_tasks_queued_behind_a_long_task_are_stolen_by_an_idle_node() -> None:
    with in_process(2, 1, prefetch=2) as pool:
        long = labelled(2.0, "long") > pool  # in-process nodes start at once: 2 s leaves a second of margin
        time.sleep(0.2)  # it runs on one node; everything after it is short
        shorts = [labelled(0.05, f"short-{i}") > pool for i in range(6)]
        short_results = [f.result(timeout=30) for f in shorts]
        _, long_node, long_end = long.result(timeout=30)
    # Some short tasks were first queued behind the long one; all of them ran on the other node, long before.
    assert all(node != long_node for _, node, _ in short_results)
    assert max(end for _, _, end in short_results) < long_end - 1.0


def test_a_started_task_is_never_withdrawn_by_a_steal(tmp_path: Path) -> None:
    from skyward.blobs import BlobStore
    from skyward.payload import encode_task
    from skyward.worker.slots import ProcessSlots

    store = BlobStore()
    slots = ProcessSlots(1, store)
    try:
        started, marker = tmp_path / "started", str(tmp_path / "ran")
        ended: Future[tuple[str, bytes]] = Future()
        payload = encode_task(mark_then_touch.local, (str(started), marker, 0.5), {}).payload
        slots.submit(payload, "t-1", (), lambda task_id, reply: ended.set_result((task_id, reply)))
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slots.cancel("t-1", stop_running=False) is False
        task_id, reply = ended.result(timeout=10)
        assert task_id == "t-1" and reply[:1] == b"\x00"  # an ordinary result, not a cancellation
        assert Path(marker).exists()
    finally:
        slots.shutdown()


def test_a_node_that_stops_answering_is_lost_by_its_heartbeats() -> None:
    # A frozen host: its provider still sees it running and no link error comes; only heartbeats tell.
    provider = InProcess()
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=1), lease=2.0) as pool:
        frozen = pool.nodes[1].name
        provider.launched[-1].freeze(1)
        results = [f.result(timeout=30) for f in [timed(0.05, i) > pool for i in range(6)]]
        assert {node for node, *_ in results} == {pool.nodes[0].name}
        assert [n.name for n in pool.nodes] == [pool.nodes[0].name] and frozen not in {
            n.name for n in pool.nodes
        }
