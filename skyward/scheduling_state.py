"""What the scheduler knows of its tasks, nodes and windows: plain data, shared by placement and dispatch."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from skyward.futures import TaskFuture
    from skyward.link import Link


@dataclass(eq=False)
class WindowState:
    """One caller's bound on admitted tasks (see `skyward.window.Window`, its public face)."""

    limit: int | None  # None: no bound of its own (the nodes' slots and queues bound what runs)
    prefetch: bool = True  # its tasks may wait in a node's queue (False: they start when they are sent)
    stop_on_error: bool = False
    in_flight: int = 0  # admitted: in the client queue or on a node
    stopped: bool = False  # a task failed (with `stop_on_error`): admits nothing more; new tasks wait
    cancelled: bool = False  # `Window.cancel`: admits nothing more; new tasks are cancelled at once
    waiting: deque[Task] = field(default_factory=deque)  # not admitted yet, FIFO
    members: dict[str, Task] = field(default_factory=dict)  # its unfinished tasks, waiting or admitted
    label: str = ""  # what it serves, for the dashboard (e.g. a joblib call); unlabelled ones are not shown
    joined: int = 0  # tasks submitted to it so far
    finished: int = 0  # of which finished (or cancelled)

    def join(self, task: Task) -> bool:
        """A new task of this window: answers whether it is admitted now (else it waits its turn)."""
        self.members[task.id] = task
        self.joined += 1
        if self._open and (self.limit is None or self.in_flight < self.limit):
            self.in_flight += 1
            task.admitted = True
            return True
        self.waiting.append(task)
        return False

    @property
    def _open(self) -> bool:
        return not (self.stopped or self.cancelled)

    def leave(self, task: Task, *, failed: bool) -> list[Task]:
        """`task` is finished, or cancelled before it ran: answers the tasks admitted in its place. When it
        `failed` and the window stops at its first error, it admits nothing more.

        (Stopping does not cancel the waiting tasks: resolving any future before the caller has seen this
        failure could show it another outcome first. The caller cancels, e.g. joblib when it aborts a call.)"""
        self.members.pop(task.id, None)
        self.finished += 1
        if task.admitted:
            task.admitted = False
            self.in_flight -= 1
        if failed and self.stop_on_error:
            self.stopped = True
        admitted: list[Task] = []
        while self._open and self.waiting and (self.limit is None or self.in_flight < self.limit):
            candidate = self.waiting.popleft()
            if not (candidate.dropping or candidate.future.done()):  # else cancelled while it waited
                self.in_flight += 1
                candidate.admitted = True
                admitted.append(candidate)
        return admitted


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
    dropping: bool = False  # cancelled while it waits on the client: never placed again
    stealing: bool = False  # asked to withdraw it from its node's queue, to run it elsewhere


@dataclass(eq=False)
class NodeSlots:
    """One node as the scheduler sees it."""

    index: int
    name: str
    capacity: int
    link: Link
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
        """Whether `task` may be sent here now (`free` and `idle_slots` inlined: it runs for every task)."""
        if not self.alive or self.reserved is not None or self.suspects:
            return False
        running = len(self.running)
        if running >= self.capacity + self.prefetch or (
            task.crashes and running
        ):  # a crashed task runs alone
            return False
        return task.prefetch or running < self.capacity
