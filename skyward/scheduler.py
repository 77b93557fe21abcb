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

from skyward import reply as replies
from skyward import settling
from skyward.delivery import Delivered, Delivery
from skyward.dispatch import Dispatcher, Replied
from skyward.errors import NodeLost, SkywardError, describe_exit
from skyward.futures import CANCEL_TIMEOUT, TaskFuture
from skyward.ioloop import EventLoopThread
from skyward.link import Link
from skyward.payload import EncodedTask
from skyward.placement import Placement
from skyward.pool_stats import NodeStats, PoolStats
from skyward.scheduling_state import NodeSlots, Task, WindowState
from skyward.uploads import TransferStats

logger = logging.getLogger("skyward.scheduler")

__all__ = ["NodeSlots", "Scheduler", "TaskFuture", "TransferStats", "WindowState"]

_Placed = tuple[list[Task], list[tuple[Task, NodeSlots]]]  # tasks to send, tasks to withdraw
_NOTHING_PLACED: _Placed = ([], [])  # never changed


class Scheduler:
    """The shell around the scheduling state: its one lock, and every entry that takes it.

    About 300 lines, past the ~150 rule on purpose: submission, replies, node events, cancellation and the
    futures' questions (`may_cancel`, `is_running`) each take the lock, decide through `skyward.placement` /
    `skyward.settling` and act outside it; kept together, the lock's discipline can be checked in one place.
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
        self.stats = PoolStats([NodeStats(n.index, n.name, slots=n.capacity) for n in nodes])
        self.stats.queue_depth = lambda index: nodes[index].queued_here
        self._retries = retries
        self._max_task_crashes = max_task_crashes
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count())
        self._lock = threading.Lock()
        self._on_node_down = on_node_down
        self._io = io
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
                future._cancel_now()  # not watched yet: nothing runs under the lock
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
        return sum(task.future._cancel_now() for task in tasks)

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
                    self.stats.replied(node.index, task.function, task.future.dispatched_at, now, final)
                elif type(outcome) is replies.Crashed:  # charged, and sent again
                    self.stats.nodes[node.index].retried += 1
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
            self.stats.set_state(index, "restarting", reason)
        if self._on_node_down is not None:  # it answers with one WARNING: the node crashed, or is lost
            logger.info("node %s is down: %s; finding out why", node.name, reason)
            self._on_node_down(index, reason)
        else:
            self.node_lost(index, reason)

    def node_lost(self, index: int, reason: str) -> None:
        """Node `index` is gone for good (its machine or link): its tasks go elsewhere, `retries` times."""
        node = self.nodes[index]
        with self._lock:
            if node.alive or node.recovering:  # once per node; before its tasks' errors are handed over
                logger.warning("node %s is lost: %s", node.name, reason)
            held = _unfinished(node)
            failed = settling.lose_node(self.placement, node, reason, retries=self._retries)
            self.stats.set_state(index, "lost", reason)
            placed = self._settle_locked(node, failed, held)
        self._go(placed)

    def node_crashed(
        self,
        index: int,
        exit_code: int | None,
        signal: int | None,
        output: tuple[str, ...],
        *,
        restart: bool,
        down_reason: str = "",
    ) -> bool:
        """Node `index`'s worker process died (its machine is still there): charges the crash to the tasks in
        its slots, sends them again (or fails those out of crashes), and answers whether the node is to be
        restarted (it then waits, `recovering`, for `node_restarted` or `node_lost`). Logs one WARNING with the
        exit code or signal (and `down_reason`, how the client noticed)."""
        node = self.nodes[index]
        retries, max_crashes = self._retries, self._max_task_crashes
        with self._lock:
            held = _unfinished(node)
            failed, again = settling.crash_node(
                self.placement, node, exit_code, signal, output, restart=restart, retries=retries,
                max_task_crashes=max_crashes,
            )  # fmt: skip
            # Logged before its tasks' outcomes are handed over: the warning comes before their errors (rare).
            outcome = (
                "restarting it"
                if again
                else f"not restarting it: {settling.no_restart_reason(restart, node)}"
            )
            noticed = f" (seen as: {down_reason})" if down_reason else ""
            died = describe_exit(exit_code, signal)
            logger.warning(
                "node %s is down: its worker process died (%s); %s%s", node.name, died, outcome, noticed
            )
            self.stats.set_state(
                index, "restarting" if again else "lost", f"its worker process died ({died})"
            )
            placed = self._settle_locked(node, failed, held)
        self._go(placed)
        return again

    def _settle_locked(
        self, node: NodeSlots, failed: Sequence[tuple[Task, BaseException]], held: list[Task]
    ) -> _Placed:
        """Hand a node event's failures to the delivery thread, then place what can go now (`held`: the
        unfinished tasks the node had, to count those sent again)."""
        for task, error in failed:
            self.placement.release(task, failed=True)
            self.stats.failed_without_reply(node.index, task.function, error)
        failing = {id(task) for task, _ in failed}
        self.stats.nodes[node.index].retried += sum(id(task) not in failing for task in held)
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
            self.stats.set_state(index, "ready")
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
            self.stats.cancelled(task.node)
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
        """Cancel every queued and running task; answer how many futures were cancelled (a task running in a
        thread slot runs on to its end there, its outcome dropped: unlike `TaskFuture.cancel`, no node is asked
        first)."""
        with self._lock:
            tasks = self.placement.unfinished()
        return sum(task.future._cancel_now() for task in tasks)

    def may_cancel(self, future: TaskFuture) -> bool:
        """`TaskFuture.cancel`'s question: can the task still be kept from running (or be stopped)? A task on a
        node: its node is asked, outside the lock (one round trip)."""
        task: Task | None = future._task
        if task is None:  # its outcome is in (or its cancellation): nothing to keep from running
            return True
        with self._lock:
            node = self._holder(task)
            if node is None:  # waiting on the client: placement skips it from now on
                task.dropping = True
                return True
            if self._io.on_loop():  # nothing waits for a node on its own I/O loop (not a user's call)
                return True
            task.cancel_sent = True  # not stolen meanwhile; a racing cancellation tells the node nothing more
            link, generation = node.link, node.generation
        try:
            dropped = self._io.run(link.cancel((task.id,))).result(timeout=CANCEL_TIMEOUT) > 0
        except Exception:  # noqa: BLE001 - no answer: it may be running
            dropped = False
        with self._lock:
            if dropped:
                return True
            now = self._holder(task)
            if now is None and not future.done():  # it left its node meanwhile (lost): back on the client
                task.dropping = True
                return True
            if now is node and node.generation == generation:
                task.cancel_sent = False
            return False

    def _holder(self, task: Task) -> NodeSlots | None:
        """The node the task is on (sent, no reply yet), or None while it waits on the client."""
        node = self.nodes[task.node] if task.node is not None else None
        return node if node is not None and node.running.get(task.id) is task else None

    def is_running(self, future: TaskFuture) -> bool:
        """`TaskFuture.running`: the task is among the first `capacity` tasks its node was sent that have not
        answered (a node starts its tasks in the order they come)."""
        task: Task | None = future._task
        if task is None:  # its outcome is in
            return False
        with self._lock:
            node = self._holder(task)
            if node is None:
                return False
            ahead = 0
            for other in node.running.values():
                if other is task:
                    return True
                ahead += not other.future.done()  # a cancelled one is dropped there, or stopped, or finishing
                if ahead >= node.capacity:
                    return False
            return False

    def close(self) -> None:
        """Fail everything still pending and stop the result thread."""
        with self._lock:
            self._closed = True
        self.cancel_all()
        self._delivery.close()


def _unfinished(node: NodeSlots) -> list[Task]:
    return [task for task in node.running.values() if not task.future.done()]
