"""The client's link to one node: the seam between scheduling and the network.

The scheduler and the pool's node watch talk to a node only through a `Link`. Two implementations:

- `skyward.transport.NodeLink`: casty over TCP (through an SSH tunnel for remote nodes), mutual TLS. What
  every real provider uses (`skyward.providers.base.casty_link`).
- `skyward.inprocess.InProcessLink`: the real node agent (`skyward.worker.agent.TaskRunner` and its slots) in
  this process, on a thread of its own, reached without sockets. Scheduling tests and the scale simulation
  (``benchmarks/simulate.py``) stand on it.

Both carry the same bytes: a task's payload as `skyward.payload` encodes it, a reply as `skyward.reply`
encodes it. A link's methods run on the pool's I/O loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from skyward.errors import SkywardError


class LinkError(SkywardError):
    """The node could not be reached, or the reply was lost: the task may or may not have run."""


class Link(Protocol):
    """What the client asks of one node. A link that cannot reach its node raises `LinkError`."""

    async def connect(self, timeout: float = 20.0) -> None:
        """Reach the node (once, before any other call); `LinkError` when it does not answer within
        `timeout`."""
        ...

    def run(self, task_id: str, payload: bytes, blobs: tuple[bytes, ...] = ()) -> Awaitable[bytes]:
        """Run an encoded task (`skyward.payload`) that refers to the uploaded `blobs`; awaits its reply's bytes.

        Answers when the task has ended there (or was withdrawn, or lacks blobs: see `skyward.reply`). A
        coroutine function (``async def run``) satisfies this; so does a plain method that returns an
        `asyncio.Future` of the loop it runs on, raising nothing itself (failures go into the future), which
        spares the dispatcher a task and a coroutine per task sent (`asyncio.ensure_future` takes either).
        """
        ...

    async def put_blob(self, digest: bytes, data: bytes) -> None:
        """Upload a large argument, which tasks then refer to by `digest`."""
        ...

    async def cancel(self, task_ids: tuple[str, ...], *, stop_running: bool = True) -> int:
        """Withdraw the listed tasks (and stop running ones where possible, when `stop_running`); how many."""
        ...

    async def heartbeat(self) -> bool:
        """True from a node that is up. Also tells the node that its client is alive (its lease)."""
        ...

    async def close(self) -> None:
        """Let go of the node; safe to call more than once, and on a link that never connected."""
        ...


#: ``then(token, answer)``, on the link's loop: a task's reply bytes, or the exception it failed with (a
#: `LinkError` when the node could not be reached or went down).
Then = Callable[[Any, "bytes | BaseException"], object]


class RunsThen(Protocol):
    """What a link may offer besides `Link`: a task sent without a future per task, its answer to a callback.

    The dispatcher uses it for tasks without blobs when a link has it (the in-process link does); at thousands
    of tasks a second, a future, its context and a loop callback per task were a good part of the loop's work.
    """

    def run_then(self, task_id: str, payload: bytes, then: Then, token: Any) -> None:
        """Send a task that refers to no blob; call ``then(token, answer)`` on this loop once it has ended there
        (as `Link.run` would answer); never raises (a failure is an answer). Call it on the link's loop."""
        ...


if TYPE_CHECKING:
    from skyward.inprocess.link import InProcessLink
    from skyward.transport import NodeLink

    def _conforms(links: tuple[NodeLink, InProcessLink]) -> list[Link]:
        """Checked by mypy, never run: both links satisfy the protocol."""
        return list(links)

    def _runs_then(link: InProcessLink) -> RunsThen:
        return link
