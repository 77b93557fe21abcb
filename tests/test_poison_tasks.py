"""Poison tasks (tasks that kill the process running them) fail clearly; crashed workers are replaced.

Real worker processes throughout. Times are printed (run with ``-s``), never asserted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

import skyward as sky

EXECUTORS = ["thread", "process"]


@sky.compute
def poison(how: str, marker: str, runs: str | None = None) -> None:
    """Say something on stderr, then die: ``exit`` (os._exit(3)) or by a signal (``SIGSEGV``, ``SIGKILL``)."""
    if runs is not None:
        with open(runs, "a") as log:
            log.write(f"{os.getpid()}\n")
    print(f"{marker}: dying by {how} in pid {os.getpid()}", file=sys.stderr, flush=True)
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), getattr(signal, how))
    time.sleep(10)  # a signal is delivered at once; never reached


@sky.compute
def square(i: int, seconds: float = 0.0) -> tuple[int, int, str]:
    time.sleep(seconds)
    return i * i, os.getpid(), os.environ["SKYWARD_NODE"]


def _wait_full(pool: sky.ComputePool, timeout: float = 60.0) -> float:
    """Seconds until every slot of the pool is back."""
    started = time.monotonic()
    full = pool.cluster.nodes * pool.concurrency
    while pool.total_slots < full:
        assert time.monotonic() - started < timeout, f"slots stayed at {pool.total_slots}/{full}"
        time.sleep(0.02)
    return time.monotonic() - started


def _check_good(futures: list, names: set[str]) -> None:  # type: ignore[type-arg]
    results = [f.result(timeout=120) for f in futures]
    assert [value for value, _, _ in results] == [i * i for i in range(len(futures))]
    assert all(pid != os.getpid() for _, pid, _ in results), "a task ran in the client"
    assert {node for _, _, node in results} <= names


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("how", ["exit", "SIGSEGV"])
def test_a_poison_task_fails_with_worker_crashed_and_the_others_finish(executor: str, how: str) -> None:
    marker = f"poison-{executor}-{how}-{os.getpid()}"
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2, executor=executor)) as pool:
        names = {n.name for n in pool.nodes}
        started = time.monotonic()
        bad = poison(how, marker) > pool
        good = [square(i, 0.2) > pool for i in range(16)]
        with pytest.raises(sky.WorkerCrashed) as caught:
            bad.result(timeout=120)
        to_error = time.monotonic() - started
        _wait_full(pool)
        to_full = time.monotonic() - started
        _check_good(good, names)
        assert (square(99) >> pool)[0] == 99 * 99
    error = caught.value
    if how == "exit":
        assert (error.exit_code, error.signal) == (3, None)
        assert "exit code 3" in str(error)
    else:
        assert (error.exit_code, error.signal) == (None, signal.SIGSEGV)
        assert "SIGSEGV" in str(error)
    assert error.crashes == 3
    assert error.node in names and error.node in str(error)
    assert "poison" in error.function and error.function in str(error)
    assert any(marker in line for line in error.output) and marker in str(error)
    # (Process slots: the agent lives on and replaces the slot process, so its node never leaves the pool.)
    print(f"\n[{executor} {how}] WorkerCrashed {to_error:.2f}s after submit, slots full at {to_full:.2f}s")


@pytest.mark.parametrize("crashes", [1, 2])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_poison_task_runs_max_task_crashes_times(executor: str, crashes: int, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    worker = sky.Worker(concurrency=1, executor=executor)
    with sky.ComputePool(nodes=1, worker=worker, max_task_crashes=crashes) as pool:
        with pytest.raises(sky.WorkerCrashed) as caught:
            poison("SIGKILL", "counted", str(runs)) >> pool
        assert caught.value.crashes == crashes and caught.value.signal == signal.SIGKILL
        assert (square(3) >> pool)[0] == 9  # the (restarted) node still works
    pids = runs.read_text().split()
    assert len(pids) == crashes and len(set(pids)) == crashes  # each time in a fresh process


def test_a_crashed_thread_node_is_restarted_with_its_slots() -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=3), max_task_crashes=1) as pool:
        before = {n.index: n.pid for n in pool.nodes}
        with pytest.raises(sky.WorkerCrashed):
            poison("exit", "restart") >> pool
        _wait_full(pool)
        after = {n.index: n.pid for n in pool.nodes}
        changed = [index for index in before if before[index] != after[index]]
        assert len(changed) == 1, (before, after)  # the node that ran it has a new agent, the other its own
        assert pool.total_slots == 6
        # The restarted node runs tasks, in its new process (thread slots: the agent's own pid).
        results = [f.result(timeout=60) for f in [square(i, 0.3) > pool for i in range(6)]]
        assert {pid for _, pid, _ in results} <= set(after.values())
        assert after[changed[0]] in {pid for _, pid, _ in results}


def test_tasks_waiting_in_a_crashed_nodes_queue_are_not_charged() -> None:
    # One slot and two queued behind it: with max_task_crashes=1 a charged task fails at once, so the queued
    # ones finishing shows the crash was charged to the running task only.
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1), prefetch=2, max_task_crashes=1) as pool:
        bad = poison("exit", "queued") > pool
        queued = [square(i) > pool for i in range(2)]
        time.sleep(0.5)
        with pytest.raises(sky.WorkerCrashed):
            bad.result(timeout=60)
        _check_good(queued, {pool.cluster.pool_id + "-node-0"})


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_task_sharing_a_node_with_a_poison_task_finishes(executor: str) -> None:
    # Thread slots: the crash takes down the agent and the neighbour with it, and charges both (what ran
    # there); the neighbour then runs alone and finishes, the poison task runs alone and crashes again.
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2, executor=executor)) as pool:
        neighbour = square(7, 1.0) > pool
        time.sleep(0.3)
        bad = poison("exit", "neighbour") > pool
        with pytest.raises(sky.WorkerCrashed):
            bad.result(timeout=120)
        assert neighbour.result(timeout=120)[0] == 49


def test_a_node_that_dies_running_nothing_three_times_in_a_row_stays_lost() -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=1)) as pool:
        victim = pool.nodes[1].name
        for attempt in range(3):
            pid = next(n.pid for n in pool.nodes if n.name == victim)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while any(n.pid == pid for n in pool.nodes) and time.monotonic() < deadline:
                time.sleep(0.02)
            if attempt < 2:
                _wait_full(pool)
        time.sleep(3.0)  # a restart would be done by now
        assert victim not in {n.name for n in pool.nodes} and pool.total_slots == 1
        assert all(node != victim for _, _, node in (square(i) >> pool for i in range(3)))


@sky.compute
def stamped(label: str, seconds: float) -> tuple[str, float]:
    time.sleep(seconds)
    return label, time.time()


def test_a_task_waiting_to_run_alone_does_not_hold_up_the_queue() -> None:
    # Process slots: the crash is the poison task's alone. It must then run alone, and no node is empty (each
    # runs a long task): one node is kept for it while the other's free slot goes on with the short tasks.
    worker = sky.Worker(concurrency=2, executor="process")
    with sky.ComputePool(nodes=2, worker=worker, prefetch=0, max_task_crashes=2) as pool:
        longs = [stamped("long", 6.0) > pool for _ in range(2)]
        time.sleep(1.0)  # one long task on each node (least loaded first)
        bad = poison("exit", "alone") > pool
        time.sleep(1.0)  # it crashed once and waits to run alone
        shorts = [stamped(f"short-{i}", 0.05) > pool for i in range(4)]
        short_ends = [f.result(timeout=60)[1] for f in shorts]
        long_ends = [f.result(timeout=60)[1] for f in longs]
        with pytest.raises(sky.WorkerCrashed):
            bad.result(timeout=60)
    assert max(short_ends) < min(long_ends), "the short tasks waited behind the task that runs alone"
