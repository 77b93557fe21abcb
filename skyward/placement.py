"""Placement: which node runs each task, as decisions over plain data (no I/O, no threads, no clock).

- Each task goes to the least-loaded live node with room; when there is none, tasks wait FIFO. A node runs at
  most `capacity` tasks at once; up to `prefetch` more wait in its own queue, so that a slot that frees up
  starts its next task without waiting a round trip for the client. A task that must start when it is sent
  (``prefetch=False``) goes only to a node with an idle slot.
- Work stealing: when nothing waits on the client and some node has idle slots while another holds tasks queued
  beyond its slots, the newest of those is withdrawn (the shell asks its node to drop it if it has not started)
  and placed again. Without it, prefetched tasks could wait behind a long task while other slots idle.
- A task that crashed a worker runs alone: it goes only to an empty node; when none is empty, the least loaded
  open node is reserved for it (it takes no new work until it empties).
- Pinned tasks (broadcast, preload) wait in their node's own queue.
- Windows (`WindowState`) bound how many tasks of one caller are admitted at once; the rest wait in the
  window, FIFO, and enter the queue as admitted ones finish.

Costs: O(log n) per task in the number of nodes. Two lazily-invalidated heaps index the nodes: the least
loaded node with room, and the node with the most stealable queued tasks. Each change to a node pushes fresh
entries under a new version; stale ones are dropped when they surface, and the heaps are rebuilt when stale
entries outnumber the nodes (O(1) amortized). Node loss and crashes cost O(n): they are rare.
"""

from __future__ import annotations

import heapq
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from skyward.futures import TaskFuture
    from skyward.transport import NodeLink


@dataclass(eq=False)
class WindowState:
    """One caller's bound on admitted tasks (see `skyward.window.Window`, its public face)."""

    limit: int | None  # None: no bound of its own (the nodes' slots and queues bound what runs)
    prefetch: bool = True  # its tasks may wait in a node's queue (False: they start when they are sent)
    cancel_on_error: bool = False
    in_flight: int = 0  # admitted: in the client queue or on a node
    halted: bool = False  # failed or cancelled: admits nothing more
    waiting: deque[Task] = field(default_factory=deque)  # not admitted yet, FIFO
    members: dict[str, Task] = field(default_factory=dict)  # its unfinished tasks, waiting or admitted


@dataclass(eq=False, slots=True)
class Task:
    id: str
    payload: bytes
    future: TaskFuture
    blobs: dict[bytes, bytes] = field(default_factory=dict)  # digest -> upload
    pinned_node: int | None = None
    function: str = "a task"  # what it calls, for error messages
    window: WindowState | None = None
    prefetch: bool = True  # may wait in a node's queue behind running tasks
    admitted: bool = False  # counted in its window's `in_flight`
    losses: int = 0  # nodes lost under it (their machine or link gone)
    crashes: int = 0  # worker processes that died under it
    epoch: int = 0  # bumped at each dispatch: replies to an earlier one are stale
    node: int | None = None  # where it runs now
    suspect: bool = False  # counted in its node's `suspects` (it had crashed a worker when placed)
    cancel_sent: bool = False
    stealing: bool = False  # asked to withdraw it from its node's queue, to run it elsewhere


@dataclass(eq=False)
class NodeSlots:
    """One node as the scheduler sees it."""

    index: int
    name: str
    capacity: int
    link: NodeLink
    prefetch: int = 0
    alive: bool = True
    recovering: bool = False  # down, being checked or restarted: its tasks and pinned work may wait for it
    generation: int = 0  # bumped when it goes down: replies over its old link are stale
    idle_crashes: int = 0  # crashes in a row with no task to charge (since the last task it finished)
    reserved: Task | None = None  # a task that crashed a worker, waiting for this node to empty to run alone
    running: dict[str, Task] = field(default_factory=dict)  # in flight on the node, oldest first
    pinned: deque[Task] = field(default_factory=deque)  # waiting for this node only
    blobs: set[bytes] = field(default_factory=set)  # digests this node holds, as far as we know
    uploads: dict[bytes, asyncio.Future[None]] = field(default_factory=dict)  # in flight, on the I/O loop
    suspects: int = 0  # tasks in `running` that crashed a worker before (they run alone)
    stealing: int = 0  # tasks in its queue being withdrawn
    version: int = 0  # bumped at each change of what the indexes see
    idle_counted: int = 0  # its share of `Placement.idle_slots`

    @property
    def closed_to_new_work(self) -> bool:
        return not self.alive or self.reserved is not None or self.suspects > 0

    @property
    def hosts_suspect(self) -> bool:
        """It runs a task that crashed a worker before, which runs alone."""
        return self.suspects > 0

    @property
    def free(self) -> int:
        """How many more tasks the node takes now (slots plus its queue)."""
        return 0 if self.closed_to_new_work else self.capacity + self.prefetch - len(self.running)

    @property
    def idle_slots(self) -> int:
        return 0 if self.closed_to_new_work else max(0, self.capacity - len(self.running))

    @property
    def queued_here(self) -> int:
        """Tasks waiting in the node's own queue (in flight beyond its slots)."""
        return max(0, len(self.running) - self.capacity)

    @property
    def load(self) -> float:
        return len(self.running) / self.capacity

    def takes(self, task: Task) -> bool:
        """Whether `task` may be sent here now."""
        if self.free <= 0 or (task.crashes and self.running):  # a task that crashed a worker runs alone
            return False
        return task.prefetch or self.idle_slots > 0


class Placement:
    """The nodes, the client's queues and the decisions over them. The caller serializes access (a lock)."""

    def __init__(self, nodes: list[NodeSlots]) -> None:
        self.nodes = nodes
        self.ready: deque[Task] = deque()  # admitted, unpinned, waiting for a node: FIFO
        self.windows: weakref.WeakSet[WindowState] = weakref.WeakSet()
        self.idle_slots = 0  # idle slots of the open nodes
        self.steals_pending = 0
        self.usable = 0  # nodes that run tasks, or may again soon
        self.total_slots = 0  # slots of the live nodes
        self._roomy: list[tuple[float, int, int]] = []  # (load, index, version) of nodes with room
        self._victims: list[tuple[int, int, int]] = []  # (-stealable, index, version)
        for node in nodes:
            self.refresh(node)
        self.recount()

    # --- the node indexes ----------------------------------------------------------------------------------

    def refresh(self, node: NodeSlots) -> None:
        """Re-index `node` after a change of its tasks or state."""
        node.version += 1
        idle = node.idle_slots
        self.idle_slots += idle - node.idle_counted
        node.idle_counted = idle
        if node.free > 0:
            heapq.heappush(self._roomy, (len(node.running) / node.capacity, node.index, node.version))
        stealable = node.queued_here - node.stealing if node.alive else 0
        if stealable > 0:
            heapq.heappush(self._victims, (-stealable, node.index, node.version))
        if len(self._roomy) + len(self._victims) > 4 * len(self.nodes) + 64:
            self._rebuild()

    def _rebuild(self) -> None:
        self._roomy.clear()
        self._victims.clear()
        for node in self.nodes:
            node.version += 1
            if node.free > 0:
                self._roomy.append((len(node.running) / node.capacity, node.index, node.version))
            stealable = node.queued_here - node.stealing if node.alive else 0
            if stealable > 0:
                self._victims.append((-stealable, node.index, node.version))
        heapq.heapify(self._roomy)
        heapq.heapify(self._victims)

    def _least_loaded(self) -> NodeSlots | None:
        """The least loaded node with room (the lowest index among equals)."""
        heap = self._roomy
        while heap:
            node = self.nodes[heap[0][1]]
            if heap[0][2] == node.version:
                return node
            heapq.heappop(heap)
        return None

    def recount(self) -> None:
        """Recount the live nodes after one went down or came back (rare: O(n))."""
        self.usable = sum(node.alive or node.recovering for node in self.nodes)
        self.total_slots = sum(node.capacity for node in self.nodes if node.alive)

    # --- tasks on nodes ------------------------------------------------------------------------------------

    def place(self, task: Task, node: NodeSlots) -> None:
        task.node = node.index
        task.epoch += 1
        task.suspect = task.crashes > 0
        node.suspects += task.suspect
        node.running[task.id] = task
        self.refresh(node)

    def unplace(self, task: Task, node: NodeSlots) -> bool:
        """Take `task` off `node`; answers whether it was being withdrawn (stolen)."""
        del node.running[task.id]
        node.suspects -= task.suspect
        task.suspect = False
        stolen = task.stealing
        if stolen:
            task.stealing = False
            node.stealing -= 1
            self.steals_pending -= 1
        self.refresh(node)
        return stolen

    def take_down(self, node: NodeSlots, *, recovering: bool) -> list[Task]:
        """Mark `node` down; returns the unfinished tasks that were in flight on it, oldest first."""
        node.alive, node.recovering = False, recovering
        node.generation += 1
        if node.reserved is not None:  # it never started there: first in line again
            self.requeue(node.reserved)
            node.reserved = None
        orphans = [task for task in node.running.values() if not task.future.done()]
        for task in list(node.running.values()):
            self.unplace(task, node)
        self.recount()
        return orphans

    # --- the client's queues -------------------------------------------------------------------------------

    def enqueue(self, task: Task) -> None:
        """A new task: to its node's queue (pinned), its window, or the client queue."""
        window = task.window
        if task.pinned_node is not None:
            self.nodes[task.pinned_node].pinned.append(task)
        elif window is None:
            self.ready.append(task)
        else:
            window.members[task.id] = task
            if window.limit is None or window.in_flight < window.limit:
                window.in_flight += 1
                task.admitted = True
                self.ready.append(task)
            else:
                window.waiting.append(task)

    def requeue(self, task: Task) -> None:
        """Send `task` again, first in line (pinned ones wait for their node)."""
        if task.pinned_node is not None:
            self.nodes[task.pinned_node].pinned.appendleft(task)
        else:
            self.ready.appendleft(task)

    def release(self, task: Task) -> None:
        """`task` is finished (or cancelled before it ran): its window admits the next waiting one."""
        window = task.window
        if window is None:
            return
        window.members.pop(task.id, None)
        if not task.admitted:
            return  # cancelled while it waited in the window: it is skipped there
        task.admitted = False
        window.in_flight -= 1
        while (
            not window.halted and window.waiting and (window.limit is None or window.in_flight < window.limit)
        ):
            admitted = window.waiting.popleft()
            if admitted.future.done():
                continue
            window.in_flight += 1
            admitted.admitted = True
            self.ready.append(admitted)

    @property
    def queued(self) -> int:
        """Tasks waiting on the client (in the queue, in their node's, reserved, or in a window)."""
        waiting = sum(len(w.waiting) for w in self.windows)
        return len(self.ready) + waiting + sum(len(n.pinned) + (n.reserved is not None) for n in self.nodes)

    # --- decisions -----------------------------------------------------------------------------------------

    def assign(self, touched: Iterable[NodeSlots] = ()) -> list[Task]:
        """Move waiting tasks onto nodes with room; returns those to send. `touched`: nodes whose tasks or
        state changed, whose pinned and reserved work may start now."""
        out: list[Task] = []
        for node in touched:
            self._serve_own_queue(node, out)
        ready = self.ready
        while ready:
            head = ready[0]
            if head.future.done():  # cancelled while it waited (and released then)
                ready.popleft()
                continue
            node = self._least_loaded()
            if node is not None and node.takes(head):
                self.place(ready.popleft(), node)
                out.append(head)
                continue
            if head.crashes and self._reserve_for(ready[0]):
                ready.popleft()
                continue
            break  # FIFO: nothing overtakes the head
        return out

    def _serve_own_queue(self, node: NodeSlots, out: list[Task]) -> None:
        if node.reserved is not None and node.alive and not node.running:
            reserved, node.reserved = node.reserved, None
            if not reserved.future.done():
                self.place(reserved, node)
                out.append(reserved)
            else:
                self.refresh(node)
        pinned = node.pinned
        while pinned and (pinned[0].future.done() or node.takes(pinned[0])):
            task = pinned.popleft()
            if not task.future.done():
                self.place(task, node)
                out.append(task)
        if pinned and pinned[0].crashes and node.free > 0:
            node.reserved = pinned.popleft()
            self.refresh(node)

    def _reserve_for(self, task: Task) -> bool:
        """Let the least loaded open node empty for `task`, which runs alone (rare: O(n))."""
        open_nodes = [n for n in self.nodes if not n.closed_to_new_work]
        if not open_nodes:
            return False
        node = min(open_nodes, key=lambda n: n.load)
        node.reserved = task
        self.refresh(node)
        return True

    def plan_steals(self) -> list[tuple[Task, NodeSlots]]:
        """Tasks to withdraw from busy nodes' queues while other nodes have idle slots; none while the client
        queue holds work (it goes to those slots first)."""
        if self.ready:
            return []
        steals: list[tuple[Task, NodeSlots]] = []
        heap = self._victims
        while self.idle_slots > self.steals_pending and heap:
            _, index, version = heap[0]
            victim = self.nodes[index]
            task = _newest_stealable(victim) if version == victim.version else None
            if task is None:
                heapq.heappop(heap)  # stale, or only unstealable tasks queued (pinned, cancelled)
                continue
            task.stealing = True
            victim.stealing += 1
            self.steals_pending += 1
            self.refresh(victim)
            steals.append((task, victim))
        return steals


def _newest_stealable(node: NodeSlots) -> Task | None:
    """The last task `node` would start among those queued beyond its slots that may move elsewhere."""
    queued = node.queued_here
    for task in reversed(node.running.values()):
        if queued == 0:
            return None
        queued -= 1
        if not (task.stealing or task.cancel_sent or task.pinned_node is not None):
            return task
    return None
