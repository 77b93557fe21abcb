"""Client-side scheduling: the async shell around the placement decisions.

The decisions (which node, prefetch, stealing, reservations, windows) are in `skyward.placement`, what becomes
of a down node's tasks in `skyward.node_loss`, both plain data. This module does what they decide: it sends
tasks to their nodes on the I/O loop (`skyward.uploads`), reads the replies, withdraws stolen tasks, tells
nodes about cancellations, and hands outcomes to `skyward.delivery`, which resolves the futures on a thread of
its own, never on the I/O loop.

- A cancelled future is dropped from the queue, or its node is told to drop it; its slot is counted busy until
  the node answers, so the accounting matches what really runs.
- A node whose link fails is down (`node_down`) until the pool finds out why (`on_node_down`) and answers with
  `node_crashed` or `node_lost`, then perhaps `node_restarted`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from skyward import node_loss
from skyward import reply as replies
from skyward.delivery import Delivery
from skyward.errors import NodeLost, SkywardError
from skyward.futures import TaskFuture
from skyward.ioloop import EventLoopThread
from skyward.payload import EncodedTask
from skyward.placement import NodeSlots, Placement, Task, WindowState
from skyward.transport import LinkError, NodeLink
from skyward.uploads import TransferStats, run_with_blobs

logger = logging.getLogger("skyward.scheduler")

__all__ = ["NodeSlots", "Scheduler", "TaskFuture", "TransferStats", "WindowState"]

_Steals = list[tuple[Task, NodeSlots]]


class Scheduler:
    def __init__(
        self,
        nodes: list[NodeSlots],
        io: EventLoopThread,
        *,
        retries: int = 3,
        max_task_crashes: int = 3,
        id_prefix: str = "t",
        on_node_down: Callable[[int, str], None] | None = None,
    ) -> None:
        """`on_node_down(index, reason)` is called on the I/O loop when a node's link fails, to find out why
        and answer with `node_crashed` or `node_lost` (then perhaps `node_restarted`); without it the node is
        lost."""
        self.nodes = nodes
        self.placement = Placement(nodes)
        self.stats = TransferStats()
        self._io = io
        self._retries = retries
        self._max_task_crashes = max_task_crashes
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count())
        self._lock = threading.Lock()
        self._on_node_down = on_node_down
        self._outbox: list[Task] = []
        self._wakeup_pending = False
        self._closed = False
        self._delivery = Delivery()

    # --- submission ----------------------------------------------------------------------------------------

    def submit(
        self, encoded: EncodedTask, pinned_node: int | None = None, *, window: WindowState | None = None
    ) -> TaskFuture:
        """Queue a serialized task (in `window` when given); the future resolves with its value or its (remote)
        exception. It stays pending while the task runs remotely, so `future.cancel()` works until the result
        is in, and reaches the node. A task submitted to a failed or cancelled window is cancelled at once."""
        future = TaskFuture()
        task = Task(next(self._ids), encoded.payload, future, encoded.blobs, pinned_node, encoded.function)
        if window is not None:
            task.window, task.prefetch = window, window.prefetch
        with self._lock:
            if self._closed:
                raise SkywardError("the pool is closed")
            if window is not None and window.halted:
                future.cancel()
                return future
            if not self.placement.usable:
                raise NodeLost("every node of the pool is lost")
            touched: tuple[NodeSlots, ...] = ()
            if pinned_node is not None:
                node = self.nodes[pinned_node]
                if not (node.alive or node.recovering):
                    raise NodeLost(f"node {node.name} is lost")
                touched = (node,)
            self.placement.enqueue(task)
            wake, steals = self._dispatch_locked(touched)
        future.add_done_callback(functools.partial(self._on_future_done, task))
        self._after(wake, steals)
        return future

    def open_window(
        self, limit: int | None, *, prefetch: bool = True, cancel_on_error: bool = False
    ) -> WindowState:
        """A new bound on admitted tasks for one caller (see `skyward.window.Window`)."""
        window = WindowState(limit, prefetch, cancel_on_error)
        with self._lock:
            self.placement.windows.add(window)
        return window

    def cancel_window(self, window: WindowState) -> int:
        """Cancel every unfinished task of `window`, which admits nothing more; answers how many were."""
        with self._lock:
            window.halted = True
            tasks = list(window.members.values())
        return sum(task.future.cancel() for task in tasks)

    @property
    def total_slots(self) -> int:
        return self.placement.total_slots

    @property
    def queued(self) -> int:
        return self.placement.queued

    # --- dispatch ------------------------------------------------------------------------------------------

    def _dispatch_locked(self, touched: Iterable[NodeSlots] = ()) -> tuple[bool, _Steals]:
        """Place what can go now; returns whether the I/O loop needs a wake-up, and the tasks to withdraw."""
        tasks = self.placement.assign(touched)
        wake = False
        if tasks:
            now = time.monotonic()
            for task in tasks:
                task.future._dispatched(now)
            self._outbox.extend(tasks)
            wake, self._wakeup_pending = not self._wakeup_pending, True
        return wake, self.placement.plan_steals()

    def _after(self, wake: bool, steals: _Steals) -> None:
        """Outside the lock: wake the I/O loop for what was placed (one wake-up carries everything queued
        since the last one), and ask nodes to withdraw stolen tasks."""
        if wake:
            self._io.call(self._drain_outbox)
        for task, victim in steals:
            self._soon(self._cancel_remote(victim, (task.id,), stop_running=False))

    def _drain_outbox(self) -> None:
        with self._lock:
            tasks, self._outbox = self._outbox, []
            self._wakeup_pending = False
        create_task = self._io.loop.create_task
        for task in tasks:
            create_task(self._run(task, task.epoch))

    def _soon(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._io.on_loop():
            self._io.loop.create_task(coro)
        else:
            self._io.run(coro)

    # --- completion (on the I/O loop) ----------------------------------------------------------------------

    async def _run(self, task: Task, epoch: int) -> None:
        node = self.nodes[task.node]  # type: ignore[index]
        generation = node.generation
        outcome: replies.Reply | BaseException
        try:
            outcome = await run_with_blobs(node, task, self.stats)
        except LinkError as exc:
            self.node_down(node.index, str(exc), generation)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future (a bad reply included)
            outcome = exc
        doomed: list[Task] = []
        with self._lock:
            if node.generation != generation or task.epoch != epoch or node.running.get(task.id) is not task:
                return  # its node went down meanwhile: it was sent again, or failed, already
            again = False
            if self.placement.unplace(task, node) and isinstance(outcome, replies.Cancelled):
                # Withdrawn before it started: run it elsewhere (unless the user cancelled it meanwhile).
                again = not task.future.done()
            elif isinstance(outcome, replies.Crashed):  # its process slot died under it; the agent lives on
                error = node_loss.charge_crash(
                    task, node, outcome.exit_code, outcome.signal, outcome.output, self._max_task_crashes
                )
                again = error is None
                outcome = error if error is not None else outcome
            elif not isinstance(outcome, BaseException):
                node.idle_crashes = 0
            if again:
                self.placement.requeue(task)
            else:
                task.future._returned(time.monotonic())
                doomed = self._finished_locked(task, outcome)
            wake, steals = self._dispatch_locked((node,))
        self._after(wake, steals)
        if not again:
            self._delivery.put(task, node.name, outcome)
        if doomed:
            self._delivery.cancel(doomed)

    def _finished_locked(self, task: Task, outcome: replies.Reply | BaseException) -> list[Task]:
        """`task` is done: free its window's place; answers the tasks to cancel when that window stops at its
        first error (cancelled after this outcome is delivered)."""
        self.placement.release(task)
        window = task.window
        failed = isinstance(outcome, BaseException | replies.Error)
        if window is None or not window.cancel_on_error or window.halted or not failed:
            return []
        window.halted = True
        return list(window.members.values())

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
            self.placement.refresh(node)
            self.placement.recount()
        logger.warning("node %s is down: %s", node.name, reason)
        if self._on_node_down is not None:
            self._on_node_down(index, reason)
        else:
            self.node_lost(index, reason)

    def node_lost(self, index: int, reason: str) -> None:
        """Node `index` is gone for good (its machine or link): its tasks go elsewhere, `retries` times."""
        node = self.nodes[index]
        with self._lock:
            failed = node_loss.lose_node(self.placement, node, reason, retries=self._retries)
            wake, steals = self._settle_locked(node, failed)
        self._after(wake, steals)
        logger.warning("node %s is lost: %s", node.name, reason)

    def node_crashed(
        self, index: int, exit_code: int | None, signal: int | None, output: tuple[str, ...], *, restart: bool
    ) -> bool:
        """Node `index`'s worker process died (its machine is still there): charges the crash to the tasks in
        its slots, sends them again (or fails those out of crashes), and answers whether the node is to be
        restarted (it then waits, `recovering`, for `node_restarted` or `node_lost`)."""
        node = self.nodes[index]
        with self._lock:
            failed, again = node_loss.crash_node(
                self.placement,
                node,
                exit_code,
                signal,
                output,
                restart=restart,
                retries=self._retries,
                max_task_crashes=self._max_task_crashes,
            )
            wake, steals = self._settle_locked(node, failed)
        self._after(wake, steals)
        return again

    def _settle_locked(
        self, node: NodeSlots, failed: Sequence[tuple[Task, BaseException]]
    ) -> tuple[bool, _Steals]:
        """Hand the failures of a node event to the delivery thread (which waits for the lock to act on them)
        and place what can go now."""
        doomed = [t for task, error in failed for t in self._finished_locked(task, error)]
        for task, error in failed:
            self._delivery.put(task, node.name, error)
        if doomed:
            self._delivery.cancel(doomed)
        return self._dispatch_locked((node,))

    def node_restarted(self, index: int, link: NodeLink) -> None:
        """Node `index` runs again, a fresh process behind `link`: it holds no task and no blob."""
        node = self.nodes[index]
        with self._lock:
            if self._closed or not node.recovering:
                return
            node.link = link
            node.blobs.clear()
            node.uploads.clear()
            node.alive, node.recovering = True, False
            self.placement.refresh(node)
            self.placement.recount()
            wake, steals = self._dispatch_locked((node,))
        self._after(wake, steals)

    def mark_lost(self, index: int, reason: str) -> None:
        """Declare a node lost (its provider saw it go, or it stopped answering heartbeats)."""
        self.node_lost(index, reason)

    # --- cancellation --------------------------------------------------------------------------------------

    def _on_future_done(self, task: Task, future: TaskFuture) -> None:
        if not future.cancelled():
            return
        tell: NodeSlots | None = None
        with self._lock:
            node = self.nodes[task.node] if task.node is not None else None
            if (
                node is not None and node.running.get(task.id) is task
            ):  # on its node: counted busy until it answers
                if task.cancel_sent:
                    return
                task.cancel_sent, tell = True, node
                wake, steals = False, []
            else:  # waiting on the client: skipped where it waits
                self.placement.release(task)
                wake, steals = self._dispatch_locked()
        if tell is not None:
            self._soon(self._cancel_remote(tell, (task.id,), stop_running=True))
        self._after(wake, steals)

    async def _cancel_remote(self, node: NodeSlots, task_ids: tuple[str, ...], *, stop_running: bool) -> None:
        try:
            await node.link.cancel(task_ids, stop_running=stop_running)
        except SkywardError:
            pass  # a node that cannot be told has bigger problems, which _run will see

    def cancel_all(self) -> int:
        """Cancel every queued and running task; answer how many futures were cancelled."""
        with self._lock:
            tasks = [*self.placement.ready, *(t for w in self.placement.windows for t in w.waiting)]
            for node in self.nodes:
                tasks += [*node.pinned, *node.running.values()]
                tasks += [node.reserved] if node.reserved is not None else []
        return sum(task.future.cancel() for task in tasks)

    def close(self) -> None:
        """Fail everything still pending and stop the result thread."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._delivery.close()
