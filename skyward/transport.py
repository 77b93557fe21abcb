"""The thin adapter over casty 0.30.2: the only module that imports casty.

(No `from __future__ import annotations` here: casty reads the message schema from live annotations.)

Each node runs a one-member casty cluster bound to 127.0.0.1 and hosting one pinned actor, `task_executor`.
The client talks to it with a casty `Client` through whatever reaches that port (directly for local nodes, an
SSH local forward for remote ones). casty's API changes between releases; nothing outside this module should
need to change when it does.
"""


import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from casty import (
    ActorFailed,
    ActorSystem,
    Askable,
    Client,
    Cluster,
    Compression,
    Context,
    Limits,
    MessageTooLarge,
    Runtime,
    Unavailable,
    actor,
)

from skyward.errors import PayloadTooLarge, SkywardError

# Identical on both sides, or the handshake refuses the connection. Payloads are already lz4'd by `wire`.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
LIMITS = Limits(message=MAX_MESSAGE_BYTES, frame=1024 * 1024, window=8 * 1024 * 1024)
COMPRESSION = Compression(codecs=())
CLUSTER_NAME = "skyward"
# Tasks may run for hours: the deadline of an ask is the pool's business, not casty's.
_FOREVER = timedelta(days=30)
_ACTOR_KEY = "tasks"
# Blobs larger than one message travel in pieces of this size.
BLOB_CHUNK_BYTES = 16 * 1024 * 1024


class LinkError(SkywardError):
    """The node could not be reached, or the reply was lost: the task may or may not have run."""


# --- messages --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask(Askable[bytes]):
    secret: bytes
    task_id: str
    payload: bytes
    blobs: tuple[bytes, ...]  # digests of the uploaded blobs the payload refers to


@dataclass(frozen=True)
class PutBlob(Askable[int]):
    """One chunk of a blob upload. Answered 1 when the blob is whole, 0 for a partial chunk, -1 if refused."""

    secret: bytes
    digest: bytes
    offset: int
    total: int
    chunk: bytes


@dataclass(frozen=True)
class CancelTasks(Askable[int]):
    secret: bytes
    task_ids: tuple[str, ...]
    stop_running: bool  # False: withdraw only tasks that have not started (work stealing)


@dataclass(frozen=True)
class Heartbeat(Askable[bool]):
    secret: bytes


class NodeHandler(Protocol):
    """What the node agent does with each message; see `skyward.worker.agent.TaskRunner`."""

    def run(
        self, secret: bytes, task_id: str, payload: bytes, blobs: tuple[bytes, ...], reply: Callable[[bytes], None]
    ) -> None: ...

    def put_blob(self, secret: bytes, digest: bytes, offset: int, total: int, chunk: bytes) -> bool: ...

    def cancel(self, secret: bytes, task_ids: tuple[str, ...], stop_running: bool) -> int: ...

    def heartbeat(self, secret: bytes) -> bool: ...


_handler: NodeHandler | None = None


@actor(pinned=True, initial=0, ask_timeout=_FOREVER, idle_after=_FOREVER)
async def task_executor(ctx: Context[int, RunTask | PutBlob | CancelTasks | Heartbeat]) -> None:
    handler = _handler
    assert handler is not None, "serve() installs the handler before the actor can be reached"
    async for msg in ctx.inbox:
        # The handler never raises and never blocks: an exception here would restart the body and lose messages.
        match msg:
            case RunTask():
                handler.run(msg.secret, msg.task_id, msg.payload, msg.blobs, msg.reply_to.tell)
            case PutBlob():
                try:
                    whole = handler.put_blob(msg.secret, msg.digest, msg.offset, msg.total, msg.chunk)
                except Exception:
                    msg.reply_to.tell(-1)
                else:
                    msg.reply_to.tell(1 if whole else 0)
            case CancelTasks():
                msg.reply_to.tell(handler.cancel(msg.secret, msg.task_ids, msg.stop_running))
            case Heartbeat():
                msg.reply_to.tell(handler.heartbeat(msg.secret))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def advertised_address(node_name: str, port: int) -> str:
    """The stable name a node is known by; the client maps it to whatever reaches the port."""
    return f"{node_name}:{port}"


async def serve(node_name: str, port: int, handler: NodeHandler, ready: Callable[[], None]) -> None:
    """Run the node's actor system on 127.0.0.1:`port` until cancelled; call `ready` once it listens."""
    global _handler
    _handler = handler
    cluster = Cluster(
        bind=f"127.0.0.1:{port}",
        advertise=advertised_address(node_name, port),
        name=CLUSTER_NAME,
        limits=LIMITS,
        compression=COMPRESSION,
    )
    async with ActorSystem(cluster=cluster, ask_timeout=_FOREVER):
        ready()
        await asyncio.Event().wait()


# --- client side -----------------------------------------------------------------------------------------------

_runtime: Runtime | None = None


def _shared_runtime() -> Runtime:
    # Each Client would otherwise start a transport thread per core.
    global _runtime
    if _runtime is None:
        _runtime = Runtime(threads=1)
    return _runtime


class NodeLink:
    """The client's connection to one node's actor. All methods run on the pool's event loop."""

    def __init__(self, node_name: str, node_port: int, dial: str, secret: bytes) -> None:
        """`node_port` is the port the node listens on; `dial` is the ``host:port`` that reaches it from here."""
        self._advertise = advertised_address(node_name, node_port)
        self._dial = dial
        self._secret = secret
        self._client: Client | None = None
        self._ref = None

    async def connect(self, timeout: float = 20.0) -> None:
        mapping = {self._advertise: self._dial}
        client = Client(
            seeds=(self._dial,),
            name=CLUSTER_NAME,
            compression=COMPRESSION,
            address_map=lambda address: mapping.get(address, address),
            limits=LIMITS,
            ask_timeout=_FOREVER,
            sync_every=timedelta(seconds=1),
            runtime=_shared_runtime(),
        )
        try:
            # casty's __aenter__ never returns while no seed answers.
            async with asyncio.timeout(timeout):
                await client.__aenter__()
        except TimeoutError as exc:
            raise LinkError(f"no answer from the node at {self._dial} within {timeout:.0f}s") from exc
        self._client = client
        self._ref = client.ref(task_executor, _ACTOR_KEY, at=self._advertise)

    async def run(self, task_id: str, payload: bytes, blobs: tuple[bytes, ...] = ()) -> bytes:
        if len(payload) > MAX_MESSAGE_BYTES - 1024:
            raise PayloadTooLarge(
                f"task {task_id} is {len(payload) / 2**20:.1f} MiB after compression; one message carries at "
                f"most {MAX_MESSAGE_BYTES / 2**20:.0f} MiB (large bytes, numpy and pandas arguments travel "
                "separately and are not limited by this; other large objects are)"
            )
        return await self._ask(RunTask(self._secret, task_id, payload, blobs))

    async def put_blob(self, digest: bytes, data: bytes) -> None:
        """Upload a blob, in chunks that each fit one message."""
        total = len(data)
        view = memoryview(data)
        for offset in range(0, max(total, 1), BLOB_CHUNK_BYTES):
            chunk = bytes(view[offset : offset + BLOB_CHUNK_BYTES])
            answer = await self._ask(PutBlob(self._secret, digest, offset, total, chunk))
            if answer < 0:
                raise LinkError(f"the node refused blob {digest.hex()[:12]}")

    async def cancel(self, task_ids: tuple[str, ...], *, stop_running: bool = True) -> int:
        return await self._ask(CancelTasks(self._secret, task_ids, stop_running))

    async def heartbeat(self) -> bool:
        return await self._ask(Heartbeat(self._secret))

    async def _ask(self, msg):  # type: ignore[no-untyped-def]
        if self._ref is None:
            raise LinkError("not connected")
        try:
            return await self._ref.ask(msg)
        except MessageTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except (Unavailable, ActorFailed, ConnectionError) as exc:
            raise LinkError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        client, self._client, self._ref = self._client, None, None
        if client is not None:
            try:
                async with asyncio.timeout(5):
                    await client.__aexit__(None, None, None)
            except Exception:  # closing a dead link is best effort
                pass
