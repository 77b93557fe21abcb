"""The I/O side of scheduling: placed tasks go to their nodes on the I/O loop, replies come back, nodes are told
to drop tasks (cancelled, or withdrawn to run elsewhere).

Tasks are handed over from any thread; one wake-up of the loop carries everything handed over since the last.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from skyward import reply as replies
from skyward.errors import SkywardError
from skyward.ioloop import EventLoopThread
from skyward.scheduling_state import NodeSlots, Task
from skyward.link import LinkError
from skyward.uploads import TransferStats, run_with_blobs

#: ``on_reply(task, epoch, node, generation, outcome)``, on the I/O loop: the node answered (or running failed).
OnReply = Callable[[Task, int, NodeSlots, int, "replies.Reply | BaseException"], None]
#: ``on_link_error(index, reason, generation)``, on the I/O loop: the node's link failed.
OnLinkError = Callable[[int, str, int], None]


class Dispatcher:
    """Sends tasks and cancellations to nodes; reports replies and link failures to the scheduler."""

    def __init__(
        self,
        nodes: list[NodeSlots],
        io: EventLoopThread,
        stats: TransferStats,
        on_reply: OnReply,
        on_link_error: OnLinkError,
    ) -> None:
        self._nodes = nodes
        self._io = io
        self._stats = stats
        self._on_reply = on_reply
        self._on_link_error = on_link_error
        self._lock = threading.Lock()
        self._outbox: list[Task] = []
        self._wakeup_pending = False

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
            self._wakeup_pending = False
        create_task = self._io.loop.create_task
        for task in tasks:
            create_task(self._run(task, task.epoch))

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
        self._on_reply(task, epoch, node, generation, outcome)

    @staticmethod
    async def _cancel_remote(node: NodeSlots, task_id: str, *, stop_running: bool) -> None:
        try:
            await node.link.cancel((task_id,), stop_running=stop_running)
        except SkywardError:
            pass  # a node that cannot be told has bigger problems, which its task's run will see
