"""An in-process node and the `skyward.link.Link` that reaches it without sockets.

The node is the real agent logic, `skyward.worker.agent.TaskRunner` with real slots, served on a `NodeHost`'s
event loop as `skyward.transport.serve` serves it on a casty actor. The link carries the same bytes a casty
link does: payloads as `skyward.payload` encodes them, replies as `skyward.reply` encodes them. What it leaves
out is the network itself (TLS, framing, message size limits): tests of those use real nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from skyward.inprocess.host import Mailbox, NodeHost
from skyward.link import LinkError, Then
from skyward.providers.base import WorkerExit
from skyward.worker.agent import TaskRunner
from skyward.worker.slots import Slots


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    """On the client's loop: answer an ask (an exception fails it)."""
    if future.done():  # failed by a loss meanwhile, or its caller gave up
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Ask:
    """One message to a node waiting for its answer, which goes back as ``outbox.post(then, token, answer)`` (an
    exception: it failed). Called with the answer on the node's loop; the node keeps it until then."""

    __slots__ = ("node", "outbox", "then", "token")

    def __init__(
        self, node: InProcessNode, outbox: Mailbox, then: Callable[[Any, Any], object], token: Any
    ) -> None:
        self.node, self.outbox, self.then, self.token = node, outbox, then, token

    def __call__(self, answer: object) -> None:
        self.node._answer(self, answer)


class InProcessNode:
    """One node agent in this process. Its methods whose names end in ``_here`` run on its host's loop."""

    def __init__(self, name: str, runner: TaskRunner, slots: Slots, host: NodeHost, latency: float) -> None:
        self.name = name
        self.runner = runner
        self.host = host
        self.latency = latency  # seconds added to each message, each way
        self.alive = True
        self.frozen = False  # takes messages and never answers (a frozen host, a link cut without a reset)
        self.exit: WorkerExit | None = None  # how its agent ended, when it "crashed" (deployment.crash)
        self._slots = slots
        self._waiting: set[_Ask] = set()  # asks not answered yet

    # --- what a link's ask does on the node -----------------------------------------------------------------

    def ask_here(self, kind: str, args: tuple[Any, ...], ask: _Ask) -> None:
        """Handle one message, as `skyward.transport.task_executor` does; the answer goes back through the
        ask's outbox (what it carries back belongs to the client's loop: never touched here)."""
        if not self.alive:
            ask.outbox.post(ask.then, ask.token, LinkError(f"node {self.name} is unreachable"))
            return
        self._waiting.add(ask)
        if self.frozen:
            return
        runner = self.runner
        try:
            if kind == "run":
                task_id, payload, blobs = args
                runner.run(task_id, payload, blobs, ask)
            elif kind == "put_blob":
                digest, data = args
                runner.put_blob(digest, 0, len(data), data)
                self._answer(ask, None)
            elif kind == "cancel":
                self._answer(ask, runner.cancel(*args))
            else:
                self._answer(ask, runner.heartbeat())
        except Exception as exc:  # noqa: BLE001 - what the casty actor answers as a refusal
            self._answer(ask, LinkError(f"node {self.name} refused {kind}: {type(exc).__name__}: {exc}"))

    def _answer(self, ask: _Ask, outcome: object) -> None:
        if self.frozen:
            return
        if ask not in self._waiting:  # the node went down meanwhile: the ask has failed already
            return
        self._waiting.remove(ask)
        if self.latency:
            self.host.replies_later.add_at(
                self.host.loop.time() + self.latency, ask.outbox.post, ask.then, ask.token, outcome
            )
        else:
            ask.outbox.post(ask.then, ask.token, outcome)

    # --- going down (a lost machine, a crashed agent) and stopping ------------------------------------------

    def down_here(self, reason: str, exit: WorkerExit | None = None) -> None:
        """The node stops answering: every ask in flight fails with `LinkError`, as a dropped connection's."""
        if not self.alive:
            return
        self.alive, self.exit = False, exit
        waiting, self._waiting = self._waiting, set()
        for ask in waiting:
            ask.outbox.post(ask.then, ask.token, LinkError(f"node {self.name} is unreachable: {reason}"))
        self._slots.shutdown()

    def stop(self) -> None:
        """Stop its slots (teardown; any thread)."""
        self.alive = False
        self._slots.shutdown()


class InProcessLink:
    """The client's `skyward.link.Link` to an `InProcessNode`: asks cross to the node's host loop and back."""

    def __init__(self, node: InProcessNode) -> None:
        self._node = node
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: Mailbox | None = None

    @property
    def node_name(self) -> str:
        return self._node.name

    async def connect(self, timeout: float = 20.0) -> None:
        if not self._node.alive:
            raise LinkError(f"no answer from in-process node {self._node.name}: it is down")
        self._loop = asyncio.get_running_loop()
        self._outbox = self._node.host.outbox(self._loop)

    def run(self, task_id: str, payload: bytes, blobs: tuple[bytes, ...] = ()) -> asyncio.Future[bytes]:
        """The future of the reply's bytes (a plain method: see `skyward.link.Link.run`); call it on the loop
        the link connected on. Failures, not being connected included, go into the future."""
        return self._send("run", (task_id, payload, blobs))

    def run_then(self, task_id: str, payload: bytes, then: Then, token: object) -> None:
        """`skyward.link.RunsThen.run_then`: a task without blobs, its reply (or failure) to ``then(token, _)``
        on the loop the link connected on; no future per task."""
        node, loop, outbox = self._node, self._loop, self._outbox
        if loop is None or outbox is None or not node.alive:
            failure = LinkError("not connected" if loop is None else f"node {node.name} is unreachable")
            asyncio.get_running_loop().call_soon(then, token, failure)
            return
        not_before = loop.time() + node.latency if node.latency else 0.0
        ask = _Ask(node, outbox, then, token)
        node.host.inbox.post(node.ask_here, "run", (task_id, payload, ()), ask, not_before=not_before)

    async def put_blob(self, digest: bytes, data: bytes) -> None:
        await self._send("put_blob", (digest, data))

    async def cancel(self, task_ids: tuple[str, ...], *, stop_running: bool = True) -> int:
        cancelled: int = await self._send("cancel", (task_ids, stop_running))
        return cancelled

    async def heartbeat(self) -> bool:
        answer: bool = await self._send("heartbeat", ())
        return answer

    def _send(self, kind: str, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Post one message to the node; the future of its answer, on the client's loop."""
        node, loop, outbox = self._node, self._loop, self._outbox
        if loop is None or outbox is None:
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(LinkError("not connected"))
            return failed
        future = loop.create_future()
        if not node.alive:
            future.set_exception(LinkError(f"node {node.name} is unreachable"))
            return future
        deliver: Callable[..., object] = node.ask_here
        not_before = loop.time() + node.latency if node.latency else 0.0
        node.host.inbox.post(deliver, kind, args, _Ask(node, outbox, _settle, future), not_before=not_before)
        return future

    async def close(self) -> None:
        self._loop = self._outbox = None
