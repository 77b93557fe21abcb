"""Client-side scheduling: which node slot runs each task, and what happens when it ends.

One lock guards the scheduler's state; around it:

- `skyward.placement`: the decisions (least-loaded node, prefetch, work stealing, tasks that run alone,
  pinned work, windows), over plain data, O(log n) per task in the number of nodes;
- `skyward.settling`: what becomes of a task when its node answers, crashes or is lost;
- `skyward.dispatch`: the I/O loop side, sending tasks and their large arguments, reading replies;
- `skyward.delivery`: a thread of its own that resolves the futures (`skyward.futures.TaskFuture`), so
  unpickling and user callbacks never run on the I/O loop.

A cancelled future is dropped from the queue, or its node is told to drop it; its slot is counted busy until the
node answers, so the accounting matches what really runs. A node whose link fails is down (`node_down`) until
the pool finds out why (`on_node_down`) and answers with `node_crashed` or `node_lost`, then perhaps
`node_restarted`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from skyward import settling
from skyward.delivery import Delivered, Delivery
from skyward.dispatch import Dispatcher, Replied
from skyward.errors import NodeLost, SkywardError
from skyward.futures import TaskFuture
from skyward.ioloop import EventLoopThread
from skyward.link import Link
from skyward.payload import EncodedTask
from skyward.placement import Placement
from skyward.scheduling_state import NodeSlots, Task, WindowState
from skyward.uploads import TransferStats

logger = logging.getLogger("skyward.scheduler")

__all__ = ["NodeSlots", "Scheduler", "TaskFuture", "TransferStats", "WindowState"]

_Placed = tuple[list[Task], list[tuple[Task, NodeSlots]]]  # tasks to send, tasks to withdraw
_NOTHING_PLACED: _Placed = ([], [])  # never changed


class Scheduler:
    """The shell around the scheduling state: its one lock, and every entry that takes it.

    About 200 lines, past the ~150 rule on purpose: submission, replies, node events and cancellation each take
    the lock, decide through `skyward.placement` / `skyward.settling` and act outside it; kept together, the
    lock's discipline can be checked in one place.
    """

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
        self._retries = retries
        self._max_task_crashes = max_task_crashes
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count())
        self._lock = threading.Lock()
        self._on_node_down = on_node_down
        self._closed = False
        self._delivery = Delivery()
        self._dispatcher = Dispatcher(nodes, io, self.stats, self._on_replies, self.node_down)

    def submit(
        self, encoded: EncodedTask, pinned_node: int | None = None, *, window: WindowState | None = None
    ) -> TaskFuture:
        """Queue a serialized task (in `window` when given); the future resolves with its value or its (remote)
        exception. It stays pending while the task runs remotely, so `future.cancel()` works until the result
        is in, and reaches the node. A task submitted to a cancelled window is cancelled at once."""
        future = TaskFuture()
        task = Task(next(self._ids), encoded.payload, future, encoded.blobs, pinned_node, encoded.function)
        if window is not None:
            task.window, task.prefetch = window, window.prefetch
        with self._lock:
            if self._closed:
                raise SkywardError("the pool is closed")
            if window is not None and window.cancelled:
                future.cancel()  # not watched yet: nothing runs under the lock
                return future
            if not self.placement.index.usable:
                raise NodeLost("every node of the pool is lost")
            touched: tuple[NodeSlots, ...] = ()
            if pinned_node is not None:
                touched = (self.nodes[pinned_node],)
                if not (touched[0].alive or touched[0].recovering):
                    raise NodeLost(f"node {touched[0].name} is lost")
            future._watch_cancel(self, task)  # before anyone else can see it, so no cancellation goes unseen
            # Behind a waiting task it waits too: the head of the queue could not be placed when the lock was
            # last released (every change that could make room places what it can), so skip looking again.
            behind = pinned_node is None and bool(self.placement.ready)
            self.placement.enqueue(task)
            placed = _NOTHING_PLACED if behind else self._place_locked(touched)
        self._go(placed)
        return future

    def open_window(
        self, limit: int | None, *, prefetch: bool = True, stop_on_error: bool = False
    ) -> WindowState:
        """A new bound on admitted tasks for one caller (see `skyward.window.Window`)."""
        window = WindowState(limit, prefetch, stop_on_error)
        with self._lock:
            self.placement.windows.add(window)
        return window

    def cancel_window(self, window: WindowState) -> int:
        """Cancel every unfinished task of `window`, which admits nothing more; answers how many were."""
        with self._lock:
            window.cancelled = True
            window.waiting.clear()  # they are cancelled below: none will be admitted
            tasks = list(window.members.values())
        return sum(task.future.cancel() for task in tasks)

    @property
    def total_slots(self) -> int:
        return self.placement.index.total_slots

    @property
    def queued(self) -> int:
        return self.placement.queued

    def _place_locked(self, touched: Iterable[NodeSlots] = ()) -> _Placed:
        return self.placement.assign(touched), self.placement.plan_steals()

    def _go(self, placed: _Placed) -> None:
        """Outside the lock: send what was placed, withdraw what was stolen."""
        tasks, steals = placed
        self._dispatcher.send(tasks)
        for task, victim in steals:
            self._dispatcher.withdraw(task, victim)

    def _on_replies(self, batch: list[Replied]) -> None:
        """On the I/O loop: nodes answered these tasks (or running them failed), in this order."""
        touched: dict[int, NodeSlots] = {}
        delivered: list[Delivered] = []
        now = time.monotonic()
        with self._lock:
            for task, epoch, node, generation, outcome in batch:
                stale = node.generation != generation or task.epoch != epoch
                if stale or node.running.get(task.id) is not task:
                    continue  # its node went down meanwhile: it was sent again, or failed, already
                final = settling.settle_reply(self.placement, task, node, outcome, self._max_task_crashes)
                if final is not None:
                    task.future._returned(now)
                    delivered.append((task, node.name, final))
                touched[node.index] = node
            if delivered:
                self._delivery.put_all(delivered)
            placed = self._place_locked(touched.values())
        self._go(placed)

    # --- nodes going down and coming back ------------------------------------------------------------------

    def node_down(self, index: int, reason: str, generation: int | None = None) -> None:
        """Node `index` stopped answering (its link failed): it gets nothing until `on_node_down` answers.

        `generation` is the node's as the caller saw it: a failure of an older link is ignored.
        """
        node = self.nodes[index]
        with self._lock:
            if self._closed or not node.alive or (generation is not None and generation != node.generation):
                return
            self.placement.set_state(node, alive=False, recovering=True)
        logger.warning("node %s is down: %s", node.name, reason)
        if self._on_node_down is not None:
            self._on_node_down(index, reason)
        else:
            self.node_lost(index, reason)

    def node_lost(self, index: int, reason: str) -> None:
        """Node `index` is gone for good (its machine or link): its tasks go elsewhere, `retries` times."""
        node = self.nodes[index]
        with self._lock:
            failed = settling.lose_node(self.placement, node, reason, retries=self._retries)
            placed = self._settle_locked(node, failed)
        self._go(placed)
        logger.warning("node %s is lost: %s", node.name, reason)

    def node_crashed(
        self, index: int, exit_code: int | None, signal: int | None, output: tuple[str, ...], *, restart: bool
    ) -> bool:
        """Node `index`'s worker process died (its machine is still there): charges the crash to the tasks in
        its slots, sends them again (or fails those out of crashes), and answers whether the node is to be
        restarted (it then waits, `recovering`, for `node_restarted` or `node_lost`)."""
        node = self.nodes[index]
        retries, max_crashes = self._retries, self._max_task_crashes
        with self._lock:
            failed, again = settling.crash_node(
                self.placement, node, exit_code, signal, output, restart=restart, retries=retries,
                max_task_crashes=max_crashes,
            )  # fmt: skip
            placed = self._settle_locked(node, failed)
        self._go(placed)
        return again

    def _settle_locked(self, node: NodeSlots, failed: Sequence[tuple[Task, BaseException]]) -> _Placed:
        """Hand a node event's failures to the delivery thread, then place what can go now."""
        for task, error in failed:
            self.placement.release(task, failed=True)
        self._delivery.put_all([(task, node.name, error) for task, error in failed])
        return self._place_locked((node,))

    def node_restarted(self, index: int, link: Link) -> None:
        """Node `index` runs again, a fresh process behind `link`: it holds no task and no blob."""
        node = self.nodes[index]
        with self._lock:
            if self._closed or not node.recovering:
                return
            node.link = link
            node.blobs.clear()
            node.uploads.clear()
            self.placement.set_state(node, alive=True, recovering=False)
            placed = self._place_locked((node,))
        self._go(placed)

    def mark_lost(self, index: int, reason: str) -> None:
        """Declare a node lost (its provider saw it go, or it stopped answering heartbeats)."""
        self.node_lost(index, reason)

    # --- cancellation --------------------------------------------------------------------------------------

    def future_cancelled(self, task: Task) -> None:
        """`task`'s future was cancelled (by its caller, a window, the pool's teardown, or its node's answer);
        in the thread that cancelled it, before the future's done callbacks run."""
        tell: NodeSlots | None = None
        placed: _Placed = ([], [])
        with self._lock:
            node = self.nodes[task.node] if task.node is not None else None
            if node is not None and node.running.get(task.id) is task:  # counted busy until its node answers
                if task.cancel_sent:
                    return
                task.cancel_sent, tell = True, node
            else:  # waiting on the client: skipped where it waits
                self.placement.release(task)
                placed = self._place_locked()
        if tell is not None:
            self._dispatcher.cancel(task, tell)
        self._go(placed)

    def unfinished_futures(self) -> list[TaskFuture]:
        """The futures of every task waiting or in flight."""
        with self._lock:
            return [task.future for task in self.placement.unfinished()]

    def cancel_all(self) -> int:
        """Cancel every queued and running task; answer how many futures were cancelled."""
        with self._lock:
            tasks = self.placement.unfinished()
        return sum(task.future.cancel() for task in tasks)

    def close(self) -> None:
        """Fail everything still pending and stop the result thread."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._delivery.close()
