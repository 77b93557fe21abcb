"""Client-side scheduling: which node slot runs each task, and what happens when it ends.

- Each task goes to the least-loaded live node with room; when there is none, tasks wait FIFO.
  A node runs at most `capacity` tasks at once; up to `prefetch` more wait in its own queue, so that a slot
  that frees up starts its next task without waiting a round trip for the client.
- Work stealing: when the client's queue is empty and a node has idle slots while another holds tasks queued
  beyond its slots, one of those is withdrawn (only if it has not started) and sent to the idle node. Without
  it, prefetched tasks could wait behind a long task while other slots idle.
- Completions are decoded and delivered (futures resolved, their callbacks run) on a thread of their own, never
  on the I/O loop.
- A cancelled future is dropped from the queue, or its node is told to drop it; its slot is counted busy until
  the node answers, so the accounting matches what really runs.
- A task whose node is lost is sent again elsewhere, up to `retries` times.
- Large arguments (blobs) are uploaded to a node once, before the first task there that needs them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from skyward import wire
from skyward.blobs import BlobIndex
from skyward.errors import NodeLost, SkywardError
from skyward.ioloop import EventLoopThread
from skyward.payload import EncodedTask
from skyward.transport import LinkError, NodeLink

logger = logging.getLogger("skyward.scheduler")

class TaskFuture(Future[Any]):
    """The future of a pool task; it also tells when the task is sent to a node (`add_dispatch_callback`).

    It stays pending while the task runs remotely, so `cancel()` works until the result is in.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dispatch_callbacks: list[Callable[[], object]] = []
        self.dispatches = 0  # how many times it was sent to a node (more than once after a steal or a retry)

    def add_dispatch_callback(self, fn: Callable[[], object]) -> None:
        """Call `fn()` each time the task is sent to a node (at once if it already was). Keep `fn` tiny."""
        with self._condition:
            self._dispatch_callbacks.append(fn)
            already = self.dispatches > 0
        if already:
            fn()

    def _mark_dispatched(self) -> None:
        with self._condition:
            self.dispatches += 1
            callbacks = list(self._dispatch_callbacks)
        for fn in callbacks:
            fn()


@dataclass(eq=False)
class Task:
    id: str
    payload: bytes
    future: TaskFuture
    blobs: dict[bytes, object] = field(default_factory=dict)
    pinned_node: int | None = None
    attempts: int = 0
    node: int | None = None  # where it runs now
    cancel_sent: bool = False
    stealing: bool = False  # asked to withdraw it from its node's queue, to run it elsewhere
    idle_slot_only: bool = False  # never wait in a node's queue: it starts when it is sent (timed work)


@dataclass(eq=False)
class NodeSlots:
    """One node as the scheduler sees it."""

    index: int
    name: str
    capacity: int
    link: NodeLink
    prefetch: int = 0
    alive: bool = True
    running: dict[str, Task] = field(default_factory=dict)  # in flight on the node, oldest first
    blobs: set[bytes] = field(default_factory=set)  # digests this node holds, as far as we know
    uploads: dict[bytes, asyncio.Future[None]] = field(default_factory=dict)  # in flight, on the I/O loop

    @property
    def free(self) -> int:
        """How many more tasks the node takes now (slots plus its queue)."""
        return self.capacity + self.prefetch - len(self.running) if self.alive else 0

    @property
    def idle_slots(self) -> int:
        return max(0, self.capacity - len(self.running)) if self.alive else 0

    @property
    def queued_here(self) -> int:
        """Tasks waiting in the node's own queue (in flight beyond its slots)."""
        return max(0, len(self.running) - self.capacity)

    @property
    def load(self) -> float:
        return len(self.running) / self.capacity


_SHUTDOWN = object()


@dataclass
class TransferStats:
    """What the client sent to nodes, for benchmarks and curiosity (`pool.stats`)."""

    tasks_sent: int = 0
    task_bytes: int = 0
    blobs_sent: int = 0
    blob_bytes: int = 0


class Scheduler:
    def __init__(
        self,
        nodes: list[NodeSlots],
        io: EventLoopThread,
        *,
        retries: int = 3,
        id_prefix: str = "t",
        blob_index: BlobIndex | None = None,
        on_node_lost: Callable[[NodeSlots, str], None] | None = None,
    ) -> None:
        self.nodes = nodes
        self._io = io
        self._retries = retries
        self._blob_index = blob_index or BlobIndex()
        self.stats = TransferStats()
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count())
        self._lock = threading.Lock()
        self._queue: deque[Task] = deque()
        self._pinned: dict[int, deque[Task]] = {node.index: deque() for node in nodes}
        self._completions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_node_lost = on_node_lost
        self._outbox: list[Task] = []
        self._wakeup_pending = False
        self._steals_pending = 0
        self._closed = False
        self._completer = threading.Thread(target=self._deliver, name="skyward-results", daemon=True)
        self._completer.start()

    # --- submission ----------------------------------------------------------------------------------------

    def submit(
        self, encoded: EncodedTask, pinned_node: int | None = None, *, idle_slot_only: bool = False
    ) -> TaskFuture:
        """Queue a serialized task; the future resolves with its value or its (remote) exception.

        The future stays pending while the task runs remotely, so `future.cancel()` works until the result is
        in, and reaches the node.
        """
        future = TaskFuture()
        task = Task(next(self._ids), encoded.payload, future, encoded.blobs, pinned_node, idle_slot_only=idle_slot_only)
        with self._lock:
            if self._closed:
                raise SkywardError("the pool is closed")
            if not self._live_nodes():
                raise NodeLost("every node of the pool is lost")
            if pinned_node is not None:
                if not self.nodes[pinned_node].alive:
                    raise NodeLost(f"node {self.nodes[pinned_node].name} is lost")
                self._pinned[pinned_node].append(task)
            else:
                self._queue.append(task)
            to_send = self._assign_locked()
        future.add_done_callback(lambda f, task=task: self._on_future_done(task))
        self._send(to_send)
        return future

    @property
    def total_slots(self) -> int:
        return sum(node.capacity for node in self.nodes if node.alive)

    @property
    def dispatch_capacity(self) -> int:
        """Tasks the live nodes hold at once: their slots plus their queues."""
        return sum(node.capacity + node.prefetch for node in self.nodes if node.alive)

    @property
    def queued(self) -> int:
        return len(self._queue) + sum(len(q) for q in self._pinned.values())

    def _live_nodes(self) -> list[NodeSlots]:
        return [node for node in self.nodes if node.alive]

    def _assign_locked(self) -> list[Task]:
        """Move queued tasks onto nodes with room; returns what to send."""
        out: list[Task] = []
        for node in self.nodes:
            pinned = self._pinned[node.index]
            while pinned and node.free > 0:
                self._start_locked(pinned.popleft(), node, out)
        while self._queue:
            head = self._queue[0]
            candidates = [n for n in self.nodes if n.free > 0 and (n.idle_slots > 0 or not head.idle_slot_only)]
            if not candidates:
                break  # FIFO: nothing overtakes the head
            node = min(candidates, key=lambda n: n.load)
            self._start_locked(self._queue.popleft(), node, out)
        if not self._queue:
            self._plan_steals_locked()
        return out

    def _plan_steals_locked(self) -> None:
        """Withdraw tasks queued on busy nodes while other nodes have idle slots (see the module docstring)."""
        idle = sum(node.idle_slots for node in self.nodes)
        while idle > self._steals_pending:
            victim = max(self.nodes, key=lambda n: n.queued_here if n.alive else -1)
            candidates = [
                task
                for task in list(victim.running.values())[victim.capacity :]
                if not (task.stealing or task.cancel_sent or task.pinned_node is not None)
            ]
            if not victim.alive or not candidates:
                return
            task = candidates[-1]  # the most recent: the last one the node would start
            task.stealing = True
            self._steals_pending += 1
            self._io.run(self._cancel_remote(victim, (task.id,), stop_running=False))

    def _start_locked(self, task: Task, node: NodeSlots, out: list[Task]) -> None:
        if task.future.done():  # cancelled while queued
            return
        task.node = node.index
        task.attempts += 1
        node.running[task.id] = task
        out.append(task)

    def _send(self, tasks: list[Task]) -> None:
        """Hand tasks to the I/O loop. One wake-up carries everything queued since the last one."""
        if not tasks:
            return
        for task in tasks:
            task.future._mark_dispatched()
        if self._io.on_loop():
            self._spawn(tasks)
            return
        with self._lock:
            self._outbox.extend(tasks)
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        self._io.loop.call_soon_threadsafe(self._drain_outbox)

    def _drain_outbox(self) -> None:
        with self._lock:
            tasks, self._outbox = self._outbox, []
            self._wakeup_pending = False
        self._spawn(tasks)

    def _spawn(self, tasks: list[Task]) -> None:
        for task in tasks:
            self._io.loop.create_task(self._run(task))

    # --- completion (on the I/O loop) ----------------------------------------------------------------------

    async def _run(self, task: Task) -> None:
        node = self.nodes[task.node]  # type: ignore[index]
        outcome: bytes | BaseException
        try:
            outcome = await self._run_with_blobs(node, task)
        except LinkError as exc:
            self._node_failed(node, exc)  # re-queues this task too, unless that already happened
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future
            outcome = exc
        stolen = False
        with self._lock:
            node.running.pop(task.id, None)
            if task.stealing:
                task.stealing = False
                self._steals_pending -= 1
                # Withdrawn before it started: run it elsewhere (unless the user cancelled it meanwhile).
                stolen = isinstance(outcome, bytes) and wire.is_cancelled(outcome) and not task.future.done()
                if stolen:
                    task.attempts -= 1  # a steal is not a failure: it does not count against the retries
                    self._queue.appendleft(task)
            to_send = self._assign_locked()
        self._send(to_send)
        if not stolen:
            self._completions.put((task, node.name, outcome))

    async def _run_with_blobs(self, node: NodeSlots, task: Task) -> bytes:
        digests = tuple(task.blobs)
        for _ in range(3):  # a node may evict a blob between our upload and the task: upload again
            await self._upload_blobs(node, task)
            self.stats.tasks_sent += 1
            self.stats.task_bytes += len(task.payload)
            reply = await node.link.run(task.id, task.payload, digests)
            missing = wire.missing_blobs(reply)
            if missing is None:
                return reply
            node.blobs.difference_update(missing)
        raise NodeLost(f"node {node.name} keeps evicting the arguments of task {task.id}: its blob cache is too small")

    async def _upload_blobs(self, node: NodeSlots, task: Task) -> None:
        """Upload the blobs of `task` that `node` lacks; concurrent tasks needing the same blob share one upload."""
        loop = asyncio.get_running_loop()
        for digest, obj in task.blobs.items():
            while digest not in node.blobs:
                pending = node.uploads.get(digest)
                if pending is not None:
                    await asyncio.shield(pending)
                    continue
                upload: asyncio.Future[None] = loop.create_future()
                node.uploads[digest] = upload
                try:
                    # Serializing 100 MB takes a while: not on the I/O loop.
                    data = await loop.run_in_executor(None, self._blob_index.serialized, digest, obj)
                    await node.link.put_blob(digest, data)
                except BaseException as exc:
                    upload.set_exception(exc)
                    upload.exception()  # retrieved: waiters see it through their own await
                    raise
                else:
                    node.blobs.add(digest)
                    self.stats.blobs_sent += 1
                    self.stats.blob_bytes += len(data)
                    upload.set_result(None)
                finally:
                    node.uploads.pop(digest, None)

    def _node_failed(self, node: NodeSlots, exc: LinkError) -> None:
        """On the I/O loop: `node` is gone. Its tasks go back to the queue, or fail when out of retries."""
        failed: list[tuple[Task, BaseException]] = []
        with self._lock:
            was_alive, node.alive = node.alive, False
            orphans = [*node.running.values(), *self._pinned[node.index]]
            node.running.clear()
            self._pinned[node.index].clear()
            survivors = bool(self._live_nodes())
            for orphan in reversed(orphans):
                if orphan.future.done():
                    continue
                if orphan.pinned_node is None and orphan.attempts <= self._retries and survivors:
                    self._queue.appendleft(orphan)
                else:
                    failed.append((orphan, NodeLost(f"task {orphan.id} lost with node {node.name}: {exc}")))
            if not survivors:
                while self._queue:
                    lost = self._queue.popleft()
                    failed.append((lost, NodeLost(f"every node of the pool is lost (last: {node.name}: {exc})")))
            to_send = self._assign_locked()
        self._send(to_send)
        for lost_task, error in failed:
            self._completions.put((lost_task, node.name, error))
        if was_alive:
            logger.warning("node %s is lost: %s", node.name, exc)
        if was_alive and self._on_node_lost is not None:
            self._on_node_lost(node, str(exc))

    def mark_lost(self, index: int, reason: str) -> None:
        """Declare a node dead (its provider saw it go); its tasks are re-dispatched."""
        self._io.call(self._node_failed, self.nodes[index], LinkError(reason))

    def _deliver(self) -> None:
        while True:
            item = self._completions.get()
            if item is _SHUTDOWN:
                return
            task, where, outcome = item
            if task.future.done():
                continue
            try:
                if isinstance(outcome, BaseException):
                    task.future.set_exception(outcome)
                elif wire.is_cancelled(outcome):
                    task.future.cancel()
                else:
                    try:
                        value = wire.decode_reply(outcome, where)
                    except BaseException as exc:  # noqa: BLE001
                        task.future.set_exception(exc)
                    else:
                        task.future.set_result(value)
            except InvalidStateError:  # cancelled by the user in the meantime
                pass

    # --- cancellation --------------------------------------------------------------------------------------

    def _on_future_done(self, task: Task) -> None:
        if not task.future.cancelled():
            return
        with self._lock:
            running_on = task.node if task.node is not None and task.id in self.nodes[task.node].running else None
            if running_on is None or task.cancel_sent:
                return  # still queued (skipped when dequeued) or finished
            task.cancel_sent = True
        node = self.nodes[running_on]
        self._io.run(self._cancel_remote(node, (task.id,), stop_running=True))

    async def _cancel_remote(self, node: NodeSlots, task_ids: tuple[str, ...], *, stop_running: bool) -> None:
        try:
            await node.link.cancel(task_ids, stop_running=stop_running)
        except SkywardError:
            pass  # a node that cannot be told has bigger problems, which _run will see

    def cancel_all(self) -> int:
        """Cancel every queued and running task; answer how many futures were cancelled."""
        with self._lock:
            tasks = list(self._queue) + [t for q in self._pinned.values() for t in q]
            tasks += [t for node in self.nodes for t in node.running.values()]
        return sum(task.future.cancel() for task in tasks)

    def close(self) -> None:
        """Fail everything still pending and stop the result thread."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._completions.put(_SHUTDOWN)
        self._completer.join(timeout=5)
