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

Costs: O(log n) per task in the number of nodes (`skyward.node_index`). Reserving a node for a task that
crashed a worker costs O(n): it is rare.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable

from skyward.node_index import NodeIndex
from skyward.scheduling_state import NodeSlots, Task, WindowState

__all__ = ["NodeSlots", "Placement", "Task", "WindowState"]


class Placement:
    """The nodes, the client's queues and the decisions over them. The caller serializes access (a lock).

    About 160 lines, past the ~150 rule on purpose: its decisions (placing, stealing, tasks that run alone, pinned
    work, windows) read and change the same queues and index, and are tested as one (tests/test_placement.py).
    """

    def __init__(self, nodes: list[NodeSlots]) -> None:
        self.nodes = nodes
        self.index = NodeIndex(nodes)
        self.ready: deque[Task] = deque()  # admitted, unpinned, waiting for a node: FIFO
        self.windows: weakref.WeakSet[WindowState] = weakref.WeakSet()
        self.steals_pending = 0

    # --- tasks on nodes ------------------------------------------------------------------------------------

    def place(self, task: Task, node: NodeSlots) -> None:
        task.node = node.index
        task.epoch += 1
        task.suspect = task.crashes > 0
        node.suspects += task.suspect
        node.running[task.id] = task
        self.index.refresh(node)

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
        self.index.refresh(node)
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
        self.index.refresh(node)  # even when it held nothing: else its stale entry stays the least loaded
        self.index.recount()
        return orphans

    def set_state(self, node: NodeSlots, *, alive: bool, recovering: bool) -> None:
        node.alive, node.recovering = alive, recovering
        self.index.refresh(node)
        self.index.recount()

    # --- the client's queues -------------------------------------------------------------------------------

    def enqueue(self, task: Task) -> None:
        """A new task: to its node's queue (pinned), or the client queue once its window (if any) admits it."""
        if task.pinned_node is not None:
            self.nodes[task.pinned_node].pinned.append(task)
        elif task.window is None or task.window.join(task):
            self.ready.append(task)

    def requeue(self, task: Task) -> None:
        """Send `task` again, first in line (pinned ones wait for their node)."""
        if task.pinned_node is not None:
            self.nodes[task.pinned_node].pinned.appendleft(task)
        else:
            self.ready.appendleft(task)

    def release(self, task: Task, *, failed: bool = False) -> None:
        """`task` is finished (`failed` or not), or cancelled before it ran: its window admits the next one."""
        if task.window is not None:
            self.ready.extend(task.window.leave(task, failed=failed))

    def unfinished(self) -> list[Task]:
        """Every task waiting or in flight."""
        tasks = [*self.ready, *(t for w in self.windows for t in w.waiting)]
        for node in self.nodes:
            tasks += [*node.pinned, *node.running.values(), *([node.reserved] if node.reserved else [])]
        return tasks

    @property
    def queued(self) -> int:
        """Tasks waiting on the client (in the queue, in their node's, reserved, or in a window), counted one by
        one (cancelled ones are only dropped where they wait when they come up): for tests and introspection."""
        waiting = [*self.ready, *(t for w in self.windows for t in w.waiting)]
        for node in self.nodes:
            waiting += [*node.pinned, *([node.reserved] if node.reserved else [])]
        return sum(not task.future.done() for task in waiting)

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
            if head.dropping or head.future.done():  # cancelled while it waited (and released then)
                ready.popleft()
                continue
            least = self.index.least_loaded()
            if least is not None and least.takes(head):
                self.place(ready.popleft(), least)
                out.append(head)
            elif head.crashes and self._reserve_for(head):
                ready.popleft()
            else:
                break  # FIFO: nothing overtakes the head
        return out

    def _serve_own_queue(self, node: NodeSlots, out: list[Task]) -> None:
        if node.reserved is None and not node.pinned:
            return
        if node.reserved is not None and node.alive and not node.running:
            reserved, node.reserved = node.reserved, None
            self.index.refresh(node)
            if not (reserved.dropping or reserved.future.done()):
                self.place(reserved, node)
                out.append(reserved)
        pinned = node.pinned
        while pinned and (pinned[0].dropping or pinned[0].future.done() or node.takes(pinned[0])):
            task = pinned.popleft()
            if not (task.dropping or task.future.done()):
                self.place(task, node)
                out.append(task)
        if pinned and pinned[0].crashes and node.free > 0:
            node.reserved = pinned.popleft()
            self.index.refresh(node)

    def _reserve_for(self, task: Task) -> bool:
        """Let the least loaded open node empty for `task`, which runs alone (rare: O(n))."""
        open_nodes = [n for n in self.nodes if not n.closed_to_new_work]
        if not open_nodes:
            return False
        node = min(open_nodes, key=lambda n: n.load)
        node.reserved = task
        self.index.refresh(node)
        return True

    def plan_steals(self) -> list[tuple[Task, NodeSlots]]:
        """Tasks to withdraw from busy nodes' queues while other nodes have idle slots; none while the client
        queue holds work (it goes to those slots first)."""
        if self.ready:
            return []
        steals: list[tuple[Task, NodeSlots]] = []
        while self.index.idle_slots > self.steals_pending:
            victim = self.index.most_stealable()
            if victim is None:
                break
            task = _newest_stealable(victim)
            if task is None:  # only pinned or cancelled tasks queued there
                self.index.pass_over_victim()
                continue
            task.stealing = True
            victim.stealing += 1
            self.steals_pending += 1
            self.index.refresh(victim)
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
