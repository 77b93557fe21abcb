"""`@sky.compute` and its operators run work in the pool's worker processes."""

from __future__ import annotations

import os
import time
from concurrent.futures import Future

import pytest

import skyward as sky


@sky.compute
def whereami(x: int) -> tuple[int, int, str]:
    return x * x, os.getpid(), os.environ["SKYWARD_NODE"]


@sky.compute
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_run_operator_runs_in_a_worker_process(pool2: sky.ComputePool) -> None:
    value, pid, node = whereami(7) >> pool2
    assert value == 49
    assert pid != os.getpid()
    assert pid in {n.pid for n in pool2.nodes}
    assert node in {n.name for n in pool2.nodes}


def test_future_operator_returns_a_future(pool2: sky.ComputePool) -> None:
    future = whereami(3) > pool2
    assert isinstance(future, Future)
    assert future.result(timeout=30)[0] == 9


def test_broadcast_runs_once_on_every_node_in_node_order(pool2: sky.ComputePool) -> None:
    results = whereami(2) @ pool2
    assert [pid for _, pid, _ in results] == [n.pid for n in pool2.nodes]
    assert [name for _, _, name in results] == [n.name for n in pool2.nodes]
    assert all(value == 4 for value, _, _ in results)


def test_gather_keeps_call_order_and_runs_in_parallel(pool2: sky.ComputePool) -> None:
    started = time.perf_counter()
    pids = sky.gather(*(nap(0.5) for _ in range(4))) >> pool2
    elapsed = time.perf_counter() - started
    assert len(pids) == 4
    assert set(pids) == {n.pid for n in pool2.nodes}  # 4 slots over 2 nodes: both used
    assert elapsed < 1.5, f"4 x 0.5 s on 4 slots took {elapsed:.2f}s: not parallel"
    values = sky.gather(*(whereami(i) for i in range(10))) >> pool2
    assert [v for v, _, _ in values] == [i * i for i in range(10)]


def test_many_calls_spread_over_every_node(pool2: sky.ComputePool) -> None:
    futures = [nap(0.05) > pool2 for _ in range(20)]
    pids = {f.result(timeout=30) for f in futures}
    assert pids == {n.pid for n in pool2.nodes}


def test_implicit_pool_inside_the_block(pool2: sky.ComputePool) -> None:
    value, pid, _ = whereami(5) >> sky
    assert value == 25 and pid in {n.pid for n in pool2.nodes}
    assert (whereami(6) > sky).result()[0] == 36


@sky.compute
def pid_of_caller() -> int:
    return os.getpid()


def test_calling_a_compute_function_runs_nothing_and_local_runs_here() -> None:
    pending = pid_of_caller()
    assert isinstance(pending, sky.PendingCall)
    assert pending.local() == os.getpid()
    assert pid_of_caller.local() == os.getpid()


def test_pool_introspection(pool2: sky.ComputePool) -> None:
    assert pool2.total_slots == 4
    assert pool2.concurrency == 2
    assert [n.index for n in pool2.nodes] == [0, 1]
    assert len({n.pid for n in pool2.nodes}) == 2
    assert all(n.executor == "thread" and n.concurrency == 2 for n in pool2.nodes)


def test_sending_to_something_that_is_not_a_pool_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="ComputePool"):
        whereami(1) >> 42


def test_gather_rejects_plain_values() -> None:
    with pytest.raises(TypeError, match="sky.compute"):
        sky.gather(whereami(1), 3)  # type: ignore[arg-type]
