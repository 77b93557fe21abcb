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
- A task whose node is lost (its machine or link gone) is sent again elsewhere, up to `retries` times.
- A node whose worker process crashed is down while the pool finds out why and restarts it (`node_down`,
  `node_crashed`, `node_restarted`); its tasks wait for it or run elsewhere. A crash is charged to the tasks
  in its slots (process slots: exactly the task whose process died; thread slots: the oldest `capacity` tasks
  sent to it that had not finished, as the agent runs them first come, first served); tasks only waiting in
  its queue are sent again uncharged. A task charged `max_task_crashes` crashes fails with `WorkerCrashed`. A
  charged task runs alone on a node from then on, so that its next crash is its own and not its neighbours':
  when no node is empty, the least loaded one is reserved for it (it takes no new work until it empties) while
  the other nodes go on with the queue.
- Large arguments (blobs) are uploaded to a node once, before the first task there that needs them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from skyward import reply as replies
from skyward.blobs import BlobIndex
from skyward.errors import NodeLost, SkywardError, WorkerCrashed, describe_exit
from skyward.ioloop import EventLoopThread
from skyward.link import Link, LinkError
from skyward.payload import EncodedTask

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
    blobs: dict[bytes, bytes] = field(default_factory=dict)  # digest -> upload
    pinned_node: int | None = None
    function: str = "a task"  # what it calls, for error messages
    losses: int = 0  # nodes lost under it (their machine or link gone)
    crashes: int = 0  # worker processes that died under it
    epoch: int = 0  # bumped at each dispatch: replies to an earlier one are stale
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
    link: Link
    prefetch: int = 0
    alive: bool = True
    recovering: bool = False  # down, being checked or restarted: its tasks and pinned work may wait for it
    generation: int = 0  # bumped when it goes down: replies over its old link are stale
    idle_crashes: int = 0  # crashes in a row with no task to charge (since the last task it finished)
    reserved: Task | None = None  # a task that crashed a worker, waiting for this node to empty to run alone
    running: dict[str, Task] = field(default_factory=dict)  # in flight on the node, oldest first
    blobs: set[bytes] = field(default_factory=set)  # digests this node holds, as far as we know
    uploads: dict[bytes, asyncio.Future[None]] = field(default_factory=dict)  # in flight, on the I/O loop

    @property
    def hosts_suspect(self) -> bool:
        """It runs a task that crashed a worker before, which runs alone."""
        return any(task.crashes for task in self.running.values())

    @property
    def closed_to_new_work(self) -> bool:
        return not self.alive or self.reserved is not None or self.hosts_suspect

    @property
    def free(self) -> int:
        """How many more tasks the node takes now (slots plus its queue)."""
        return 0 if self.closed_to_new_work else self.capacity + self.prefetch - len(self.running)

    @property
    def idle_slots(self) -> int:
        return 0 if self.closed_to_new_work else max(0, self.capacity - len(self.running))

    def takes(self, task: Task) -> bool:
        """Whether `task` may be sent here now (a task that crashed a worker goes only to an empty node)."""
        return self.free > 0 and not (task.crashes and self.running)

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


#: A node that crashes this many times in a row with no task to charge (a broken environment, a machine that
#: kills it at once) is not restarted again. Crashes with tasks running are bounded by ``max_task_crashes``.
MAX_IDLE_CRASHES = 3


class Scheduler:
    def __init__(
        self,
        nodes: list[NodeSlots],
        io: EventLoopThread,
        *,
        retries: int = 3,
        max_task_crashes: int = 3,
        id_prefix: str = "t",
        blob_index: BlobIndex | None = None,
        on_node_down: Callable[[int, str], None] | None = None,
    ) -> None:
        """`on_node_down(index, reason)` is called on the I/O loop when a node's link fails, to find out why
        and answer with `node_crashed` or `node_lost` (then perhaps `node_restarted`); without it the node is
        lost."""
        self.nodes = nodes
        self._io = io
        self._retries = retries
        self._max_task_crashes = max_task_crashes
        self._blob_index = blob_index or BlobIndex()
        self.stats = TransferStats()
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count())
        self._lock = threading.Lock()
        self._queue: deque[Task] = deque()
        self._pinned: dict[int, deque[Task]] = {node.index: deque() for node in nodes}
        self._completions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_node_down = on_node_down
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
        task = Task(next(self._ids), encoded.payload, future, encoded.blobs, pinned_node, encoded.function)
        task.idle_slot_only = idle_slot_only
        with self._lock:
            if self._closed:
                raise SkywardError("the pool is closed")
            if not self._usable_locked():
                raise NodeLost("every node of the pool is lost")
            if pinned_node is not None:
                node = self.nodes[pinned_node]
                if not (node.alive or node.recovering):
                    raise NodeLost(f"node {node.name} is lost")
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
        reserved = sum(node.reserved is not None for node in self.nodes)
        return len(self._queue) + sum(len(q) for q in self._pinned.values()) + reserved

    def _usable_locked(self) -> bool:
        """Some node runs tasks, or may again soon."""
        return any(node.alive or node.recovering for node in self.nodes)

    def _assign_locked(self) -> list[Task]:
        """Move queued tasks onto nodes with room; returns what to send."""
        out: list[Task] = []
        for node in self.nodes:
            if node.reserved is not None and node.alive and not node.running:
                reserved, node.reserved = node.reserved, None
                self._start_locked(reserved, node, out)
            pinned = self._pinned[node.index]
            while pinned and (pinned[0].future.done() or node.takes(pinned[0])):
                self._start_locked(pinned.popleft(), node, out)
            if pinned and pinned[0].crashes and node.free > 0:
                node.reserved = pinned.popleft()
        while self._queue:
            head = self._queue[0]
            candidates = [
                n for n in self.nodes if n.takes(head) and (n.idle_slots > 0 or not head.idle_slot_only)
            ]
            if candidates:
                node = min(candidates, key=lambda n: n.load)
                self._start_locked(self._queue.popleft(), node, out)
                continue
            if head.crashes:  # it runs alone: let the least loaded open node empty for it; others go on
                open_nodes = [n for n in self.nodes if not n.closed_to_new_work]
                if open_nodes:
                    min(open_nodes, key=lambda n: n.load).reserved = self._queue.popleft()
                    continue
            break  # FIFO: nothing overtakes the head
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
        task.epoch += 1
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
            self._io.loop.create_task(self._run(task, task.epoch))

    # --- completion (on the I/O loop) ----------------------------------------------------------------------

    async def _run(self, task: Task, epoch: int) -> None:
        node = self.nodes[task.node]  # type: ignore[index]
        generation = node.generation
        outcome: replies.Reply | BaseException | None
        try:
            outcome = await self._run_with_blobs(node, task)
        except LinkError as exc:
            self.node_down(node.index, str(exc), generation)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future (a bad reply included)
            outcome = exc
        crash = outcome if isinstance(outcome, replies.Crashed) else None
        stolen = False
        with self._lock:
            if node.generation != generation or task.epoch != epoch or node.running.get(task.id) is not task:
                return  # its node went down meanwhile: it was sent again, or failed, already
            node.running.pop(task.id)
            if task.stealing:
                task.stealing = False
                self._steals_pending -= 1
                # Withdrawn before it started: run it elsewhere (unless the user cancelled it meanwhile).
                stolen = isinstance(outcome, replies.Cancelled) and not task.future.done()
                if stolen:
                    self._queue.appendleft(task)
            if crash is not None:  # its process slot died under it; the agent lives on
                outcome = self._charge_crash_locked(task, node, crash.exit_code, crash.signal, crash.output)
                if outcome is None:
                    self._requeue_locked(task, node)
            elif not isinstance(outcome, BaseException) and not stolen:
                node.idle_crashes = 0
            to_send = self._assign_locked()
        self._send(to_send)
        if outcome is not None and not stolen:
            self._completions.put((task, node.name, outcome))

    async def _run_with_blobs(self, node: NodeSlots, task: Task) -> replies.Reply:
        digests = tuple(task.blobs)
        link = node.link
        for _ in range(3):  # a node may evict a blob between our upload and the task: upload again
            await self._upload_blobs(node, task)
            self.stats.tasks_sent += 1
            self.stats.task_bytes += len(task.payload)
            reply = replies.decode(await link.run(task.id, task.payload, digests))
            if not isinstance(reply, replies.MissingBlobs):
                return reply
            node.blobs.difference_update(reply.digests)
        raise NodeLost(f"node {node.name} keeps evicting the arguments of task {task.id}: its blob cache is too small")

    async def _upload_blobs(self, node: NodeSlots, task: Task) -> None:
        """Upload the blobs of `task` that `node` lacks; concurrent tasks needing the same blob share one upload."""
        loop = asyncio.get_running_loop()
        for digest, data in task.blobs.items():  # serialized at submit: the argument as it was then
            while digest not in node.blobs:
                pending = node.uploads.get(digest)
                if pending is not None:
                    await asyncio.shield(pending)
                    continue
                upload: asyncio.Future[None] = loop.create_future()
                node.uploads[digest] = upload
                try:
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

    # --- nodes going down and coming back ------------------------------------------------------------------

    def node_down(self, index: int, reason: str, generation: int | None = None) -> None:
        """Node `index` stopped answering (its link failed): it gets nothing until `on_node_down` answers.

        `generation` is the node's as the caller saw it: a failure of an older link is ignored.
        """
        node = self.nodes[index]
        with self._lock:
            if self._closed or not node.alive or (generation is not None and generation != node.generation):
                return
            node.alive, node.recovering = False, True
        logger.warning("node %s is down: %s", node.name, reason)
        if self._on_node_down is not None:
            self._on_node_down(index, reason)
        else:
            self.node_lost(index, reason)

    def node_lost(self, index: int, reason: str) -> None:
        """Node `index` is gone for good (its machine or link): its tasks go elsewhere, `retries` times."""
        node = self.nodes[index]
        with self._lock:
            orphans = self._take_down_locked(node, recovering=False)
            for orphan in orphans:
                orphan.losses += 1
            failed = self._settle_locked(node, orphans, charged=(), reason=reason)
            to_send = self._assign_locked()
        self._finish_settling(node, failed, to_send)
        logger.warning("node %s is lost: %s", node.name, reason)

    def node_crashed(
        self, index: int, exit_code: int | None, signal: int | None, output: tuple[str, ...], *, restart: bool
    ) -> bool:
        """Node `index`'s worker process died (its machine is still there).

        Charges the crash to the tasks in its slots, sends them again (or fails those out of crashes), and
        answers whether the node is to be restarted (it then waits, `recovering`, for `node_restarted` or
        `node_lost`).
        """
        node = self.nodes[index]
        with self._lock:
            # The oldest tasks it was sent are those its slots ran (see the module docstring).
            charged = [
                task for task in list(node.running.values())[: node.capacity] if not task.future.done()
            ]
            node.idle_crashes = 0 if charged else node.idle_crashes + 1
            again = restart and node.idle_crashes < MAX_IDLE_CRASHES
            reason = f"its worker process died ({describe_exit(exit_code, signal)})"
            if not again:
                reason += f" and is not restarted ({_no_restart_reason(restart, node)})"
            orphans = self._take_down_locked(node, recovering=again)
            failed: list[tuple[Task, BaseException]] = []
            for task in charged:
                error = self._charge_crash_locked(task, node, exit_code, signal, output)
                if error is not None:
                    failed.append((task, error))
                    orphans.remove(task)
            failed += self._settle_locked(node, orphans, charged, reason)
            to_send = self._assign_locked()
        self._finish_settling(node, failed, to_send)
        return again

    def node_restarted(self, index: int, link: Link) -> None:
        """Node `index` runs again, a fresh process behind `link`: it holds no task and no blob."""
        node = self.nodes[index]
        with self._lock:
            if self._closed or not node.recovering:
                return
            node.link = link
            node.blobs.clear()
            node.uploads.clear()
            node.alive, node.recovering = True, False
            to_send = self._assign_locked()
        self._send(to_send)

    def mark_lost(self, index: int, reason: str) -> None:
        """Declare a node lost (its provider saw it go, or it stopped answering heartbeats)."""
        self.node_lost(index, reason)

    def _take_down_locked(self, node: NodeSlots, *, recovering: bool) -> list[Task]:
        """Mark `node` down; returns the unfinished tasks that were in flight on it, oldest first."""
        node.alive, node.recovering = False, recovering
        node.generation += 1
        if node.reserved is not None:  # it never started there: first in line again
            self._requeue_locked(node.reserved, node)
            node.reserved = None
        orphans = [task for task in node.running.values() if not task.future.done()]
        for task in node.running.values():
            if task.stealing:  # its withdrawal will never be answered
                task.stealing = False
                self._steals_pending -= 1
        node.running.clear()
        return orphans

    def _charge_crash_locked(
        self, task: Task, node: NodeSlots, exit_code: int | None, signal: int | None, output: tuple[str, ...]
    ) -> WorkerCrashed | None:
        """Count a crash against `task`; the error to fail it with once it is out of crashes, else None."""
        task.crashes += 1
        if task.crashes < self._max_task_crashes:
            return None
        return WorkerCrashed(task.function, node.name, exit_code, signal, task.crashes, output)

    def _requeue_locked(self, task: Task, node: NodeSlots) -> None:
        """Send `task` again, first in line (pinned ones wait for their node)."""
        if task.pinned_node is not None:
            self._pinned[task.pinned_node].appendleft(task)
        else:
            self._queue.appendleft(task)

    def _settle_locked(
        self, node: NodeSlots, orphans: list[Task], charged: Sequence[Task], reason: str
    ) -> list[tuple[Task, BaseException]]:
        """Send again what the down `node` held, or fail it: a lost node's tasks after `retries` losses, its
        pinned tasks unless it comes back, and everything when no node is left."""
        failed: list[tuple[Task, BaseException]] = []
        survivors = self._usable_locked()
        for orphan in reversed(orphans):
            if orphan.pinned_node is not None:
                if node.recovering:
                    self._pinned[node.index].appendleft(orphan)
                else:
                    failed.append(
                        (orphan, NodeLost(f"task {orphan.id} lost with node {node.name}: {reason}"))
                    )
            elif survivors and (orphan in charged or orphan.losses <= self._retries):
                self._queue.appendleft(orphan)
            else:
                failed.append((orphan, NodeLost(f"task {orphan.id} lost with node {node.name}: {reason}")))
        if not node.recovering:
            while self._pinned[node.index]:
                pinned = self._pinned[node.index].popleft()
                failed.append((pinned, NodeLost(f"node {node.name} is lost: {reason}")))
        if not survivors:
            while self._queue:
                lost = self._queue.popleft()
                failed.append(
                    (lost, NodeLost(f"every node of the pool is lost (last: {node.name}: {reason})"))
                )
        return failed

    def _finish_settling(
        self, node: NodeSlots, failed: list[tuple[Task, BaseException]], to_send: list[Task]
    ) -> None:
        self._send(to_send)
        for task, error in failed:
            self._completions.put((task, node.name, error))

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
                elif isinstance(outcome, replies.Cancelled):
                    task.future.cancel()
                else:
                    try:  # unpickled here, off the I/O loop
                        if isinstance(outcome, replies.Error):
                            raise outcome.exception(where)
                        value = outcome.value()
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
            tasks += [node.reserved for node in self.nodes if node.reserved is not None]
        return sum(task.future.cancel() for task in tasks)

    def close(self) -> None:
        """Fail everything still pending and stop the result thread."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._completions.put(_SHUTDOWN)
        self._completer.join(timeout=5)


def _no_restart_reason(restart: bool, node: NodeSlots) -> str:
    if not restart:
        return "restarts are off"
    return f"it died {node.idle_crashes} times in a row running nothing"
