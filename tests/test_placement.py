"""Placement and settling as decisions over plain data: no pool, no loop, no thread, no network."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyward import reply as replies
from skyward.errors import NodeLost, WorkerCrashed
from skyward.futures import TaskFuture
from skyward.placement import NodeSlots, Placement, Task, WindowState
from skyward.settling import crash_node, lose_node, settle_reply

_ids = itertools.count()


def nodes(count: int, capacity: int = 1, prefetch: int = 0) -> list[NodeSlots]:
    return [NodeSlots(i, f"n{i}", capacity, link=None, prefetch=prefetch) for i in range(count)]  # type: ignore[arg-type]


def task(**fields: object) -> Task:
    return Task(f"t-{next(_ids)}", b"", TaskFuture(), **fields)  # type: ignore[arg-type]


def submit(placement: Placement, *tasks: Task) -> list[Task]:
    for t in tasks:
        placement.enqueue(t)
    pinned = {t.pinned_node for t in tasks if t.pinned_node is not None}
    return placement.assign([placement.nodes[i] for i in sorted(pinned)])


def where(tasks: list[Task]) -> list[int | None]:
    return [t.node for t in tasks]


def test_least_loaded_node_first_lowest_index_among_equals() -> None:
    placement = Placement(nodes(3, capacity=2))
    sent = submit(placement, *(task() for _ in range(6)))
    assert where(sent) == [0, 1, 2, 0, 1, 2]


def test_slots_plus_prefetch_bound_a_node_and_the_rest_waits_fifo() -> None:
    placement = Placement(nodes(1, capacity=1, prefetch=1))
    first, second, third = task(), task(), task()
    assert submit(placement, first, second, third) == [first, second]
    assert list(placement.ready) == [third]
    node = placement.nodes[0]
    placement.unplace(first, node)
    assert placement.assign([node]) == [third]


def test_idle_slots_first_then_node_queues() -> None:
    placement = Placement(nodes(2, capacity=2, prefetch=2))
    sent = submit(placement, *(task() for _ in range(8)))
    # the four slots fill before any task waits in a node's queue
    assert where(sent[:4]) == [0, 1, 0, 1]
    assert all(n.idle_slots == 0 for n in placement.nodes)
    assert where(sent[4:]) == [0, 1, 0, 1]


def test_a_task_without_prefetch_goes_only_to_an_idle_slot_and_holds_the_line() -> None:
    placement = Placement(nodes(1, capacity=1, prefetch=3))
    running = submit(placement, task())
    timed, behind = task(prefetch=False), task()
    assert submit(placement, timed, behind) == []  # FIFO: nothing overtakes the head
    placement.unplace(running[0], placement.nodes[0])
    assert placement.assign([placement.nodes[0]]) == [timed, behind]


def test_cancelled_tasks_are_skipped_where_they_wait() -> None:
    placement = Placement(nodes(1))
    blocker, dropped, kept = task(), task(), task()
    submit(placement, blocker, dropped, kept)
    dropped.future.cancel()
    placement.unplace(blocker, placement.nodes[0])
    assert placement.assign([placement.nodes[0]]) == [kept]


def test_pinned_tasks_wait_for_their_node_only() -> None:
    placement = Placement(nodes(2))
    busy = submit(placement, task(pinned_node=1))
    assert where(busy) == [1]
    pinned = task(pinned_node=1)
    placement.enqueue(pinned)
    assert placement.assign([placement.nodes[1]]) == []  # node 0 is idle, but it is not node 1
    placement.unplace(busy[0], placement.nodes[1])
    assert placement.assign([placement.nodes[1]]) == [pinned]


def test_work_stealing_takes_the_newest_queued_task_of_the_busiest_node() -> None:
    placement = Placement(nodes(2, capacity=1, prefetch=3))
    pinned_behind = task(pinned_node=0)
    first = submit(placement, task(pinned_node=0))
    placement.enqueue(pinned_behind)
    placement.assign([placement.nodes[0]])
    movable = [task(), task()]
    for t in movable:  # node 1 is full too: both go to node 0's queue
        placement.enqueue(t)
    placement.nodes[1].alive = False
    placement.index.refresh(placement.nodes[1])
    placement.assign()
    assert [t.node for t in movable] == [0, 0]
    placement.nodes[1].alive = True
    placement.index.refresh(placement.nodes[1])
    steals = placement.plan_steals()  # node 1 has one idle slot: one steal, the newest, never a pinned one
    assert steals == [(movable[1], placement.nodes[0])]
    assert placement.plan_steals() == []  # one idle slot, one steal pending
    # the node answers that it dropped it: it is placed again, on the idle node
    assert settle_reply(placement, movable[1], placement.nodes[0], replies.Cancelled(), 3) is None
    assert placement.assign([placement.nodes[0]]) == [movable[1]] and movable[1].node == 1
    assert first[0].node == 0 and pinned_behind.node == 0


def test_no_steal_while_the_client_queue_holds_work() -> None:
    placement = Placement(nodes(1, capacity=1, prefetch=1))
    submit(placement, task(), task(), task())
    assert placement.ready and placement.plan_steals() == []


def test_a_task_that_crashed_a_worker_runs_alone() -> None:
    placement = Placement(nodes(2, capacity=2))
    submit(placement, task(), task())  # one on each node
    suspect = task(crashes=1)
    assert submit(placement, suspect) == []
    reserved = [n for n in placement.nodes if n.reserved is suspect]
    assert len(reserved) == 1 and reserved[0].closed_to_new_work
    others = submit(placement, task(), task())
    assert all(t.node != reserved[0].index for t in others)  # the reserved node takes no new work
    node = reserved[0]
    placement.unplace(next(iter(node.running.values())), node)
    assert placement.assign([node]) == [suspect]
    assert node.hosts_suspect and node.free == 0  # alone until it ends


def test_a_window_admits_at_most_its_limit_in_fifo_order() -> None:
    placement = Placement(nodes(1, capacity=10))
    window = WindowState(limit=2)
    tasks = [task(window=window) for _ in range(5)]
    assert submit(placement, *tasks) == tasks[:2]
    assert window.in_flight == 2 and list(window.waiting) == tasks[2:]
    tasks[3].future.cancel()
    placement.release(tasks[3])  # cancelled while waiting: skipped, no place freed
    assert window.in_flight == 2
    node = placement.nodes[0]
    placement.unplace(tasks[0], node)
    placement.release(tasks[0])
    assert placement.assign([node]) == [tasks[2]]
    placement.unplace(tasks[1], node)
    placement.release(tasks[1])
    assert placement.assign([node]) == [tasks[4]]
    assert window.in_flight == 2 and not window.waiting


def test_a_window_that_stops_at_its_first_error_admits_nothing_more() -> None:
    placement = Placement(nodes(1, capacity=1))
    window = WindowState(limit=1, stop_on_error=True)
    failing, waiting = task(window=window), task(window=window)
    submit(placement, failing, waiting)
    outcome = settle_reply(placement, failing, placement.nodes[0], ValueError("boom"), 3)
    assert isinstance(outcome, ValueError)
    assert window.stopped and list(placement.ready) == []  # nothing more admitted
    later = task(window=window)
    placement.enqueue(later)
    assert list(window.waiting) == [waiting, later] and not waiting.future.done()  # the caller cancels them


def test_an_error_in_an_ordinary_window_admits_the_next() -> None:
    placement = Placement(nodes(1, capacity=1))
    window = WindowState(limit=1)
    failing, waiting = task(window=window), task(window=window)
    submit(placement, failing, waiting)
    settle_reply(placement, failing, placement.nodes[0], ValueError("boom"), 3)
    assert not window.stopped and placement.assign([placement.nodes[0]]) == [waiting]


def test_a_lost_nodes_tasks_go_elsewhere_until_out_of_retries() -> None:
    placement = Placement(nodes(2))
    first, second = submit(placement, task(), task(losses=1))
    pinned = task(pinned_node=second.node)
    placement.enqueue(pinned)
    failed = lose_node(placement, placement.nodes[second.node], "gone", retries=1)
    assert [(t, type(e)) for t, e in failed] == [(second, NodeLost), (pinned, NodeLost)]
    assert placement.index.usable == 1 and placement.index.total_slots == 1
    waiting = task()
    assert submit(placement, waiting) == []
    failed = lose_node(placement, placement.nodes[first.node], "gone", retries=1)
    assert [t for t, _ in failed] == [first, waiting]  # no node left: all fail, whatever their retries
    assert "every node of the pool is lost" in str(failed[1][1])


def test_an_idle_node_lost_is_never_chosen_again() -> None:
    # Lost while it held nothing (missed heartbeats): its entry in the index must go stale with it, or it stays
    # "the least loaded node" and the client queue waits behind it forever.
    placement = Placement(nodes(2))
    assert lose_node(placement, placement.nodes[0], "no answer to heartbeats", retries=1) == []
    waiting = task()
    assert where(submit(placement, waiting)) == [1]


def test_a_crash_is_charged_to_the_tasks_in_the_slots_not_to_the_queued_ones() -> None:
    placement = Placement(nodes(2, capacity=1, prefetch=1))
    node = placement.nodes[0]
    running, queued = task(), task()
    placement.place(running, node)  # sent first: in its slot
    placement.place(queued, node)  # in its queue
    failed, again = crash_node(placement, node, 7, None, (), restart=True, retries=3, max_task_crashes=2)
    assert failed == [] and again and node.recovering
    assert (running.crashes, queued.crashes) == (1, 0)
    assert list(placement.ready) == [running, queued]
    # charged its second crash, it fails with WorkerCrashed
    placement.ready.clear()
    placement.set_state(node, alive=True, recovering=False)
    placement.place(running, node)
    failed, _ = crash_node(placement, node, 7, None, (), restart=True, retries=3, max_task_crashes=2)
    assert [(t, type(e)) for t, e in failed] == [(running, WorkerCrashed)]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=12),
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=3),
    st.randoms(use_true_random=False),
)
def test_the_indexed_choice_is_the_scan_of_every_node(
    count: int, capacities: list[int], prefetch: int, rng: random.Random
) -> None:
    # The heaps must pick what the old per-task scan picked: min (load, index) among the nodes that take it.
    placement = Placement(
        [
            NodeSlots(i, f"n{i}", capacities[i % len(capacities)], None, prefetch=prefetch)
            for i in range(count)
        ]  # type: ignore[arg-type]
    )
    placed: list[Task] = []
    for _ in range(200):
        if placed and rng.random() < 0.45:
            done = placed.pop(rng.randrange(len(placed)))
            node = placement.nodes[done.node]  # type: ignore[index]
            placement.unplace(done, node)
            placement.assign([node])
            continue
        new = task(prefetch=rng.random() < 0.8)
        takers = [n for n in placement.nodes if n.takes(new)]
        expected = min(takers, key=lambda n: (n.load, n.index)) if takers and not placement.ready else None
        placement.enqueue(new)
        sent = placement.assign()
        if expected is not None:
            assert sent and sent[0] is new and new.node == expected.index
        placed += sent
        placement.ready.clear()  # keep the check to one decision at a time
        assert placement.index.idle_slots == sum(n.idle_slots for n in placement.nodes)
    index = placement.index
    assert len(index._roomy) + len(index._victims) <= 4 * count + 66  # stale entries are pruned


def test_placement_costs_do_not_grow_with_the_nodes() -> None:
    # Count node inspections per task at 10 and at 1,000 nodes: a per-task scan would be 100x more.
    inspections = {}
    for count in (10, 1000):
        placement = Placement(nodes(count, capacity=10, prefetch=10))
        seen = 0
        original = NodeSlots.free.fget  # type: ignore[attr-defined]

        def counting(node: NodeSlots, original=original) -> int:
            nonlocal seen
            seen += 1
            return original(node)

        NodeSlots.free = property(counting)  # type: ignore[method-assign,assignment]
        try:
            running: list[Task] = []
            for _ in range(30 * count):
                running += submit(placement, task())
                if len(running) > count * 15:
                    done = running.pop(0)
                    node = placement.nodes[done.node]  # type: ignore[index]
                    placement.unplace(done, node)
                    running += placement.assign([node])
        finally:
            NodeSlots.free = property(original)  # type: ignore[method-assign,assignment]
        inspections[count] = seen / (30 * count)
    assert inspections[1000] < 2 * inspections[10] + 5, inspections


@pytest.mark.parametrize("limit", [None, 3])
def test_window_members_are_tracked_until_released(limit: int | None) -> None:
    placement = Placement(nodes(2, capacity=2))
    window = WindowState(limit=limit)
    tasks = [task(window=window) for _ in range(5)]
    submit(placement, *tasks)
    assert set(window.members) == {t.id for t in tasks}
    for t in tasks:
        if t.node is not None:
            placement.unplace(t, placement.nodes[t.node])
        placement.release(t)
        placement.assign()
    assert not window.members and window.in_flight == 0
