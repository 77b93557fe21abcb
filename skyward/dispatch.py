"""The I/O side of scheduling: placed tasks go to their nodes on the I/O loop, replies come back, nodes are told
to drop tasks (cancelled, or withdrawn to run elsewhere).

Tasks are handed over from any thread; one wake-up of the loop carries everything handed over since the last.
A task without large arguments is sent as a future chain (the link's `run`, a done callback), not as an asyncio
task of its own: at thousands of tasks a second, a task and its coroutines per send were most of the loop's
work; over a link that offers `run_then` (`skyward.link.RunsThen`), without even the future. Replies are
handed to the scheduler in batches, one per turn of the loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from skyward import reply as replies
from skyward.errors import SkywardError
from skyward.ioloop import EventLoopThread
from skyward.link import LinkError
from skyward.pool_stats import PoolStats
from skyward.scheduling_state import NodeSlots, Task
from skyward.uploads import run_with_blobs

#: One reply: ``(task, epoch, node, generation, outcome)``: the node answered (or running failed).
Replied = tuple[Task, int, NodeSlots, int, "replies.Reply | BaseException"]
#: ``on_replies(batch)``, on the I/O loop: the replies that came in during one turn of the loop, in order.
OnReplies = Callable[[list[Replied]], None]
#: ``on_link_error(index, reason, generation)``, on the I/O loop: the node's link failed.
OnLinkError = Callable[[int, str, int], None]


class Dispatcher:
    """Sends tasks and cancellations to nodes; reports replies and link failures to the scheduler."""

    def __init__(
        self,
        nodes: list[NodeSlots],
        io: EventLoopThread,
        stats: PoolStats,
        on_replies: OnReplies,
        on_link_error: OnLinkError,
    ) -> None:
        self._nodes = nodes
        self._io = io
        self._stats = stats
        self._on_replies = on_replies
        self._on_link_error = on_link_error
        self._lock = threading.Lock()
        self._outbox: list[Task] = []
        self._wakeup_pending = False
        self._replies: list[Replied] = []  # on the loop only

    def send(self, tasks: list[Task]) -> None:
        """Send `tasks` (placed on their nodes) from any thread."""
        if not tasks:
            return
        now = time.monotonic()
        for task in tasks:
            task.future._dispatched(now)
        with self._lock:
            self._outbox.extend(tasks)
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        self._io.call(self._drain)

    def withdraw(self, task: Task, node: NodeSlots) -> None:
        """Ask `node` to drop `task` if it has not started (it then answers `Cancelled`)."""
        self._soon(self._cancel_remote(node, task.id, stop_running=False))

    def cancel(self, task: Task, node: NodeSlots) -> None:
        """Tell `node` the task was cancelled: dropped if queued, stopped if running in a process slot."""
        self._soon(self._cancel_remote(node, task.id, stop_running=True))

    def _drain(self) -> None:
        with self._lock:
            tasks, self._outbox = self._outbox, []
            if not tasks:
                self._wakeup_pending = False
                return
        loop = self._io.loop
        # Still pending: while tasks keep coming, the loop looks again at its next turn instead of being woken
        # by each `send` (a wake-up from another thread is a write to the loop's socket, and hands the
        # interpreter lock to the loop's thread, for every task submitted). One empty look ends it.
        loop.call_soon(self._drain)
        stats, nodes, ran, answered = self._stats, self._nodes, self._ran, self._answered
        for task in tasks:
            if task.blobs:  # uploads first, perhaps again: a coroutine of its own
                loop.create_task(self._run(task, task.epoch))
                continue
            node = nodes[task.node]  # type: ignore[index]
            stats.tasks_sent += 1
            stats.task_bytes += len(task.payload)
            stats.nodes[node.index].bytes_out += len(task.payload)
            run_then = getattr(node.link, "run_then", None)
            if run_then is not None:  # no future per task (`skyward.link.RunsThen`)
                run_then(task.id, task.payload, answered, (task, task.epoch, node, node.generation))
                continue
            try:
                sent = asyncio.ensure_future(node.link.run(task.id, task.payload, ()), loop=loop)
            except BaseException as exc:  # noqa: BLE001 - a link should fail its future; delivered all the same
                self._replied(task, task.epoch, node, node.generation, exc)
                continue
            sent.add_done_callback(functools.partial(ran, task, task.epoch, node, node.generation))

    def _answered(self, token: tuple[Task, int, NodeSlots, int], answer: bytes | BaseException) -> None:
        """A task sent by `run_then` came back: ``answer`` is its reply's bytes, or why it failed."""
        task, epoch, node, generation = token
        outcome: replies.Reply | BaseException
        if isinstance(answer, BaseException):
            if isinstance(answer, LinkError):
                self._on_link_error(node.index, str(answer), generation)
                return
            outcome = answer
        else:
            self._stats.nodes[node.index].bytes_in += len(answer)
            try:
                outcome = replies.decode(answer)
            except BaseException as exc:  # noqa: BLE001 - a bad reply: delivered to the caller's future
                outcome = exc
        self._came_back(task, epoch, node, generation, outcome)

    def _ran(
        self, task: Task, epoch: int, node: NodeSlots, generation: int, sent: asyncio.Future[bytes]
    ) -> None:
        """A task sent without blobs came back (the future chain of `_drain`)."""
        outcome: replies.Reply | BaseException
        try:
            data = sent.result()
            self._stats.nodes[node.index].bytes_in += len(data)
            outcome = replies.decode(data)
        except LinkError as exc:
            self._on_link_error(node.index, str(exc), generation)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future (a bad reply included)
            outcome = exc
        self._came_back(task, epoch, node, generation, outcome)

    def _came_back(
        self, task: Task, epoch: int, node: NodeSlots, generation: int, outcome: replies.Reply | BaseException
    ) -> None:
        if type(outcome) is replies.MissingBlobs:  # it refers to none: a confused node; handled as blobs are
            self._io.loop.create_task(self._run(task, epoch))
            return
        self._replied(task, epoch, node, generation, outcome)

    def _replied(
        self, task: Task, epoch: int, node: NodeSlots, generation: int, outcome: replies.Reply | BaseException
    ) -> None:
        """Batch a reply; the scheduler takes the batch at the end of this turn of the loop."""
        self._replies.append((task, epoch, node, generation, outcome))
        if len(self._replies) == 1:
            self._io.loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        batch, self._replies = self._replies, []
        self._on_replies(batch)

    def _soon(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._io.on_loop():
            self._io.loop.create_task(coro)
        else:
            self._io.run(coro)

    async def _run(self, task: Task, epoch: int) -> None:
        node = self._nodes[task.node]  # type: ignore[index]
        generation = node.generation
        outcome: replies.Reply | BaseException
        try:
            outcome = await run_with_blobs(node, task, self._stats)
        except LinkError as exc:
            self._on_link_error(node.index, str(exc), generation)
            return
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's future (a bad reply included)
            outcome = exc
        self._replied(task, epoch, node, generation, outcome)

    @staticmethod
    async def _cancel_remote(node: NodeSlots, task_id: str, *, stop_running: bool) -> None:
        try:
            await node.link.cancel((task_id,), stop_running=stop_running)
        except SkywardError:
            pass  # a node that cannot be told has bigger problems, which its task's run will see
