"""A pool as Python's conventions expect it: a `concurrent.futures.Executor`, startable in a notebook cell
without ``with``, and usable from asyncio without blocking the running loop. Real Local pools throughout: every
result says which process ran it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import FIRST_COMPLETED, Executor, as_completed, wait

import pytest

import skyward as sky


def where(x: int) -> tuple[int, int]:
    return x, os.getpid()


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture(scope="module")
def pool() -> sky.ComputePool:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        yield pool


def test_a_pool_is_an_executor_whose_futures_work_with_wait_and_as_completed(pool: sky.ComputePool) -> None:
    assert isinstance(pool, Executor)
    futures = [pool.submit(where, i) for i in range(12)]
    done = {f.result()[0] for f in as_completed(futures, timeout=60)}
    assert done == set(range(12))
    finished, _ = wait([pool.submit(nap, 0.01), pool.submit(nap, 5)], return_when=FIRST_COMPLETED, timeout=60)
    assert [f.result() for f in finished] == [0.01]
    pids = {f.result()[1] for f in futures}
    assert pids <= {node.pid for node in pool.nodes} and os.getpid() not in pids


def touch(path: str, seconds: float = 0.0) -> int:
    with open(path + ".started", "w"):
        pass
    time.sleep(seconds)
    with open(path, "w"):
        pass
    return os.getpid()


def _until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_cancel_and_running_tell_queued_tasks_from_running_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # 2 nodes x 1 thread slot, each with 1 task of prefetch: 2 tasks run, 2 wait in the nodes' queues, 2 on the
    # client. A running thread cannot be stopped: cancel() is False and its result comes; the others cancel.
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=1), prefetch=1) as pool:
        running = [pool.submit(touch, str(tmp_path / f"run{i}"), 1.0) for i in range(2)]
        queued = [pool.submit(touch, str(tmp_path / f"queued{i}")) for i in range(4)]
        _until(
            lambda: (
                pool.stats.tasks_sent == 4 and all((tmp_path / f"run{i}.started").exists() for i in (0, 1))
            )
        )
        assert all(f.running() for f in running)
        # the two prefetched ones are on their nodes, yet not running
        assert not any(f.running() for f in queued)
        assert [f.cancel() for f in running] == [False, False]
        assert not any(f.cancelled() for f in running) and all(f.running() for f in running)
        assert all(f.cancel() for f in queued) and all(f.cancelled() for f in queued)
        _, pending = wait([*running, *queued], timeout=30)
        assert not pending and len(list(as_completed([*running, *queued], timeout=30))) == 6
        pids = {f.result() for f in running}
        assert pids == {node.pid for node in pool.nodes} and os.getpid() not in pids
        assert not any(f.running() for f in running)
        after = pool.submit(touch, str(tmp_path / "after")).result(timeout=30)
        assert after in pids
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".started") == ["after", "run0", "run1"]
    assert not list(tmp_path.glob("queued*"))


def test_a_cancelled_future_counts_as_done_for_wait_and_as_completed(pool: sky.ComputePool) -> None:
    blockers = [pool.submit(nap, 1.0) for _ in range(4)]  # every slot busy: the rest wait
    futures = [pool.submit(nap, 3.0) for _ in range(8)]
    assert all(f.cancel() for f in futures)
    finished, pending = wait(futures, timeout=10)
    assert not pending and all(f.cancelled() for f in finished)
    assert len(list(as_completed(futures, timeout=10))) == 8
    assert [f.result(timeout=30) for f in blockers] == [1.0] * 4


def test_map_keeps_order_and_chunks_calls_into_fewer_tasks(pool: sky.ComputePool) -> None:
    assert [x for x, _ in pool.map(where, range(20))] == list(range(20))
    before = pool.stats.tasks_sent
    results = list(pool.map(divmod, range(20), [3] * 20, chunksize=6))
    assert results == [divmod(i, 3) for i in range(20)]
    assert pool.stats.tasks_sent - before == 4  # 20 calls in chunks of 6
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(where, range(3), chunksize=0)


def test_maps_timeout_bounds_the_wait_for_each_result(pool: sky.ComputePool) -> None:
    results = pool.map(nap, [3.0], timeout=0.2)
    with pytest.raises(TimeoutError):
        next(results)


def test_shutdown_waits_for_running_tasks_then_ends_the_pool() -> None:
    pool = sky.ComputePool(nodes=1).start()
    slow = pool.submit(nap, 0.5)
    pool.shutdown(wait=True)
    assert slow.done() and slow.result() == 0.5
    with pytest.raises(sky.SkywardError, match="not active"):
        pool.submit(nap, 0)


def test_shutdown_can_cancel_what_has_not_finished() -> None:
    pool = sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1)).start()
    futures = [pool.submit(nap, 2.0) for _ in range(4)]
    started = time.monotonic()
    pool.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - started < 8  # not the 8 s the four naps would take
    assert all(f.cancelled() for f in futures[1:])


def test_shutdown_without_waiting_returns_at_once_and_ends_the_pool_later() -> None:
    pool = sky.ComputePool(nodes=1).start()
    slow = pool.submit(nap, 1.0)
    started = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - started < 0.5
    assert slow.result(timeout=30) == 1.0
    deadline = time.monotonic() + 30
    while pool.nodes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.nodes == []


def test_start_and_close_outside_a_block_like_a_notebook() -> None:
    pool = sky.ComputePool(nodes=1).start()
    try:
        node_pid = pool.nodes[0].pid
        assert pool.submit(where, 1).result()[1] == node_pid
        with pytest.raises(sky.SkywardError, match="already started"):
            pool.start()
    finally:
        pool.close()
    pool.close()  # closing twice does nothing
    assert pool.nodes == []
    with pytest.raises(ProcessLookupError):  # the node process is gone with the pool
        for _ in range(100):
            os.kill(node_pid, 0)
            time.sleep(0.1)


def test_a_started_pool_left_open_is_closed_when_the_program_exits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        """
        import skyward as sky
        pool = sky.ComputePool(nodes=1).start()
        print(pool.nodes[0].pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    node_pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(node_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"the node process {node_pid} outlived the program that started its pool")


@sky.compute
def remote_where(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_async_with_does_not_block_the_loop_and_calls_are_awaitable() -> None:
    async def main() -> tuple[int, list[tuple[int, int]], tuple[int, int], set[int], bool]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        async with sky.ComputePool(nodes=2) as pool:
            ticks_while_starting = ticks
            results = await asyncio.gather(*(pool.submit_async(where, i) for i in range(6)))
            implicit = remote_where(7) >> sky  # the pool is the current one in this task's context
            pids = {node.pid for node in pool.nodes}
        try:
            still_current = sky.current_pool() is pool
        except sky.NoActivePool:
            still_current = False
        ticking.cancel()
        return ticks_while_starting, results, implicit, pids, still_current

    ticks, results, implicit, pids, still_current = asyncio.run(main())
    assert ticks > 5  # the loop ran while the nodes started
    assert [x for x, _ in results] == list(range(6)) and {pid for _, pid in results} <= pids
    assert implicit[0] == 7 and implicit[1] in pids and os.getpid() not in pids
    assert not still_current  # leaving the block restores the context
