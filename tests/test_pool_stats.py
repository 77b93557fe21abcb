"""`pool.stats`: per-node counters that match where tasks really ran, node states, and the printed table.

Counting runs on in-process nodes (the real agent and thread slots; a task tells its node by its slot thread);
what needs a real process (a killed agent, its restart) runs on `sky.Local`.
"""

from __future__ import annotations

import collections
import os
import signal
import time

import pytest

import skyward as sky
from skyward.inprocess import InProcess, current_node


@sky.compute
def where(seconds: float, index: int) -> tuple[str | None, int]:
    time.sleep(seconds)
    return current_node(), index


@sky.compute
def fails(tag: str) -> None:
    raise ValueError(f"broken on purpose {tag} on {current_node()}")


@sky.compute
def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_per_node_counts_match_where_the_tasks_ran() -> None:
    with sky.ComputePool(provider=InProcess(), nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        results = [f.result(timeout=60) for f in [where(0.02, i) > pool for i in range(30)]]
        with pytest.raises(ValueError, match="broken on purpose") as raised:
            fails("x1") >> pool
        ran = collections.Counter(node for node, _ in results)
        stats = pool.stats
        by_name = {n.name: n for n in stats.nodes}
        failed_on = str(raised.value).split(" on ")[-1]
        for name, node in by_name.items():
            assert node.done == ran[name], (name, node.done, ran)
            assert node.failed == (1 if name == failed_on else 0)
            assert node.bytes_out > 0 and node.bytes_in > 0
            assert node.busy_seconds > 0
            assert node.state == "ready"
        assert stats.done == 30 and stats.failed == 1
        assert stats.tasks_sent == 31  # the old transfer counters are the same object's
        records = stats.recent_tasks()
        assert len(records) == 31
        assert {r.function for r in records} == {"test_pool_stats.where", "test_pool_stats.fails"}
        assert all(0 <= r.slot < 2 and r.start <= r.end for r in records)
        failure = next(r for r in records if not r.ok)
        assert stats.nodes[failure.node].name == failed_on
        assert "ValueError" in failure.traceback() and "broken on purpose x1" in failure.traceback()


def test_the_table_names_every_node_and_the_totals() -> None:
    with sky.ComputePool(provider=InProcess(), nodes=3, worker=sky.Worker(concurrency=1)) as pool:
        for future in [where(0, i) > pool for i in range(9)]:
            future.result(timeout=60)
        text = str(pool.stats)
    for node in pool.stats.nodes:
        assert node.name in text
    total = next(line for line in text.splitlines() if "total" in line)
    assert " 9 " in total, text


def test_cancelled_tasks_are_counted_once() -> None:
    with sky.ComputePool(provider=InProcess(), nodes=1, worker=sky.Worker(concurrency=1), prefetch=0) as pool:
        running = where(1.0, 0) > pool
        waiting = [where(0, i) > pool for i in range(1, 5)]
        time.sleep(0.2)
        assert all(f.cancel() for f in waiting)
        running.result(timeout=60)
        stats = pool.stats
        assert stats.cancelled_total == 4
        assert stats.nodes[0].done == 1


def test_a_killed_node_is_restarting_then_ready_and_its_task_is_counted_as_retried() -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1)) as pool:
        first = pool.nodes[0].pid
        future = pid_after(1.5) > pool
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        assert future.result(timeout=60) != first  # it ran again, in the restarted agent
        node = pool.stats.nodes[0]
        assert node.retried == 1
        assert node.state == "ready" and node.done == 1
        assert node.heartbeat_age() < 30


def test_a_lost_node_stays_listed_with_its_reason() -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=1), restart_nodes=False) as pool:
        victim = pool.nodes[1]
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pool.stats.nodes[1].state != "lost" and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = {row["name"]: row for row in pool.stats.node_rows()}
        assert rows[victim.name]["state"] == "lost"
        assert "worker process" in rows[victim.name]["reason"]
        assert rows[victim.name]["heartbeat_age"] is None
        assert rows[pool.nodes[0].name]["state"] == "ready"


def test_recent_tasks_are_the_newest_after_a_time_and_at_most_a_limit() -> None:
    from skyward import reply
    from skyward.pool_stats import NodeStats, PoolStats

    stats = PoolStats([NodeStats(0, "n0", slots=2)])
    now = time.monotonic()
    for i in range(10):
        stats.replied(0, f"f{i}", now - 5 + i * 0.4, now - 4.9 + i * 0.4, reply.Ok(b""))
    assert [r.function for r in stats.recent_tasks()] == [f"f{i}" for i in range(10)]
    assert [r.function for r in stats.recent_tasks(after=now - 3.0)] == [f"f{i}" for i in range(5, 10)]
    assert [r.function for r in stats.recent_tasks(limit=3)] == ["f7", "f8", "f9"]
    assert [r.function for r in stats.recent_tasks(horizon=2.0)] == ["f8", "f9"]
    # Two slots, tasks one after another: each starts when it was sent (its slot was free), so busy = sum.
    assert abs(stats.nodes[0].busy_seconds - 10 * 0.1) < 1e-9
    assert {r.slot for r in stats.recent_tasks()} <= {0, 1}
