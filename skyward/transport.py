"""The thin adapter over casty 0.30.2: the only module that imports casty.

(No `from __future__ import annotations` here: casty reads the message schema from live annotations.)

Each node runs a one-member casty cluster hosting one pinned actor, `task_executor`, bound to 127.0.0.1 (or,
on a Slurm node, to the node's own address). The client talks to it with a casty `Client` through whatever
reaches that port (directly for local and Slurm nodes, an SSH local forward for remote ones). casty's API changes between releases; nothing outside this module should
need to change when it does.

Every connection is mutual TLS with the pool's certificates (`skyward.credentials`): a node accepts only its
client, and the client's link to a node accepts only that node. Nothing secret travels in a message, and a peer
that cannot prove who it is gets no further than the handshake: it cannot join the node's cluster, activate
actors there, nor make the node buffer its messages. See docs/security.md.

Over ~300 lines on purpose: it is the one module that imports casty, whose API changes between releases; the
messages, the node's actor and the client's link change together when it does.
"""

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from casty import (
    TLS,
    ActivationEnded,
    ActivationFailed,
    ActivationStarted,
    ActorFailed,
    ActorSystem,
    Askable,
    Client,
    Cluster,
    Compression,
    Context,
    Event,
    Limits,
    MemberChanged,
    MessageDropped,
    MessageTooLarge,
    NodeId,
    Ref,
    Runtime,
    Unavailable,
    WriteFailed,
    actor,
)

from skyward.credentials import KeyFiles, TLSMaterial, client_material
from skyward.errors import PayloadTooLarge
from skyward.link import LinkError

logger = logging.getLogger("skyward.transport")

# Identical on both sides, or the handshake refuses the connection. Payloads are already lz4'd by `wire`.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
LIMITS = Limits(message=MAX_MESSAGE_BYTES, frame=1024 * 1024, window=8 * 1024 * 1024)
COMPRESSION = Compression(codecs=())
CLUSTER_NAME = "skyward"
# Tasks may run for hours: the deadline of an ask is the pool's business, not casty's.
_FOREVER = timedelta(days=30)
# The one key a node answers on; a message to any other key ends its activation at once (no state kept).
_ACTOR_KEY = "tasks"
# Blobs larger than one message travel in pieces of this size.
BLOB_CHUNK_BYTES = 16 * 1024 * 1024


# --- messages --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask(Askable[bytes]):
    task_id: str
    payload: bytes
    blobs: tuple[bytes, ...]  # digests of the uploaded blobs the payload refers to


@dataclass(frozen=True)
class PutBlob(Askable[int]):
    """One chunk of a blob upload. Answered 1 when the blob is whole, 0 for a partial chunk, -1 if refused."""

    digest: bytes
    offset: int
    total: int
    chunk: bytes


@dataclass(frozen=True)
class CancelTasks(Askable[int]):
    task_ids: tuple[str, ...]
    stop_running: bool  # False: withdraw only tasks that have not started (work stealing)


@dataclass(frozen=True)
class Heartbeat(Askable[bool]):
    """Answered True by a node that is up (the TLS handshake already said it is the pool's node)."""


class NodeHandler(Protocol):
    """What the node agent does with each message; see `skyward.worker.agent.TaskRunner`."""

    def run(
        self, task_id: str, payload: bytes, blobs: tuple[bytes, ...], reply: Callable[[bytes], None]
    ) -> None: ...

    def put_blob(self, digest: bytes, offset: int, total: int, chunk: bytes) -> bool: ...

    def cancel(self, task_ids: tuple[str, ...], stop_running: bool) -> int: ...

    def heartbeat(self) -> bool: ...


@dataclass(frozen=True)
class _Served:
    handler: NodeHandler
    key: str  # the key as `ctx.key` reads it on this node: "@<advertised address>/tasks"


_served: _Served | None = None


@actor(pinned=True, initial=0, ask_timeout=_FOREVER, idle_after=_FOREVER)
async def task_executor(ctx: Context[int, RunTask | PutBlob | CancelTasks | Heartbeat]) -> None:
    served = _served
    if served is None or ctx.key != served.key:
        # Any other key: end the activation before reading anything; the asker gets `Unavailable`. Otherwise each
        # key would keep an activation (and its mailbox) for 30 days: ~10 KB each. casty still keeps well under
        # 1 KB per key it has seen (measured, docs/security.md); only the pool's client gets this far (TLS).
        return
    handler = served.handler
    async for msg in ctx.inbox:
        # The handler never raises and never blocks: an exception here would restart the body and lose messages.
        match msg:
            case RunTask():
                handler.run(msg.task_id, msg.payload, msg.blobs, msg.reply_to.tell)
            case PutBlob():
                try:
                    whole = handler.put_blob(msg.digest, msg.offset, msg.total, msg.chunk)
                except Exception:  # noqa: BLE001  (any failure to store a chunk is a refusal the client handles)
                    msg.reply_to.tell(-1)
                else:
                    msg.reply_to.tell(1 if whole else 0)
            case CancelTasks():
                msg.reply_to.tell(handler.cancel(msg.task_ids, msg.stop_running))
            case Heartbeat():
                msg.reply_to.tell(handler.heartbeat())


def bind_address(host: str) -> str:
    """`host` (a name or an IPv4 address) as the numeric IPv4 address the node listens on."""
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError) as exc:
        raise OSError(f"cannot listen on {host!r}: it names no IPv4 address here ({exc})") from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def advertised_address(node_name: str, port: int) -> str:
    """The stable name a node is known by; the client maps it to whatever reaches the port."""
    return f"{node_name}:{port}"


# --- TLS and events ------------------------------------------------------------------------------------------


def _tls(files: KeyFiles) -> TLS:
    return TLS(cert=files.cert, key=files.key, ca=files.ca, require_client_cert=True)


def _printable(text: object) -> str:
    """A peer-supplied string made safe for a terminal: control characters (ANSI escapes) shown escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


def _named(node: NodeId) -> str:
    return f"{_printable(node.address or 'a client')} ({node.incarnation.hex[:8]})"


class TransportObserver:
    """casty's events as records of the ``skyward.transport`` logger, peer-supplied text escaped.

    casty's own `LoggingObserver` prints the address a peer advertises as it is: ANSI escapes in it reached the
    client's terminal (a node's output is forwarded there). Activations are not reported (the frequent kind).
    """

    def wants(self, kind: type[Event], /) -> bool:
        return kind not in (ActivationStarted, ActivationEnded)

    def __call__(self, event: Event, /) -> None:
        if isinstance(event, MemberChanged):
            # INFO, not WARNING: a node going is the scheduler's one warning, with the reason (an exit code,
            # missed heartbeats, a cut link); this is the transport's view of it.
            level = logging.INFO if event.status in ("suspect", "dead") else logging.DEBUG
            logger.log(
                level, "member %s went from %s to %s", _named(event.node), event.previous, event.status
            )
            return
        fields = getattr(event, "__dict__", {})
        text = ", ".join(
            f"{k}={_named(v) if isinstance(v, NodeId) else _printable(v)}" for k, v in fields.items()
        )
        level = (
            logging.WARNING
            if isinstance(event, ActivationFailed | WriteFailed | MessageDropped)
            else logging.DEBUG
        )
        logger.log(level, "%s: %s", type(event).__name__, text)


async def serve(
    node_name: str,
    port: int,
    handler: NodeHandler,
    ready: Callable[[], None],
    tls: TLSMaterial,
    bind: str = "127.0.0.1",
) -> None:
    """Run the node's actor system on `bind`:`port` until cancelled; call `ready` once it listens.

    Only a peer holding the client certificate `tls.ca` signed gets past the handshake, whoever can reach `bind`.
    """
    global _served
    advertise = advertised_address(node_name, port)
    _served = _Served(handler, f"@{advertise}/{_ACTOR_KEY}")
    files = KeyFiles(tls)
    cluster = Cluster(
        bind=f"{bind}:{port}",
        advertise=advertise,
        name=CLUSTER_NAME,
        tls=_tls(files),
        limits=LIMITS,
        compression=COMPRESSION,
    )
    try:
        async with ActorSystem(cluster=cluster, ask_timeout=_FOREVER, observer=TransportObserver()):
            ready()
            await asyncio.Event().wait()
    finally:
        files.close()


# --- client side -----------------------------------------------------------------------------------------------

_runtime: Runtime | None = None


def _shared_runtime() -> Runtime:
    # Each Client would otherwise start a transport thread per core.
    global _runtime
    if _runtime is None:
        _runtime = Runtime(threads=1)
    return _runtime


class NodeLink:
    """The client's connection to one node's actor: the casty `skyward.link.Link`. Methods run on the pool's loop."""

    def __init__(self, node_name: str, node_port: int, dial: str, secret: bytes) -> None:
        """`node_port` is the port the node listens on; `dial` is the ``host:port`` that reaches it from here.

        `secret` is the pool's: the link derives from it the client's certificate and this node's CA, and sends
        nothing of it.
        """
        self._name = node_name
        self._advertise = advertised_address(node_name, node_port)
        self._dial = dial
        self._secret = secret
        self._client: Client | None = None
        self._files: KeyFiles | None = None
        self._ref: Ref[RunTask | PutBlob | CancelTasks | Heartbeat] | None = None

    async def connect(self, timeout: float = 20.0) -> None:
        mapping = {self._advertise: self._dial}
        files = KeyFiles(client_material(self._secret, self._name))
        client = Client(
            seeds=(self._dial,),
            name=CLUSTER_NAME,
            tls=_tls(files),
            compression=COMPRESSION,
            address_map=lambda address: mapping.get(address, address),
            limits=LIMITS,
            ask_timeout=_FOREVER,
            sync_every=timedelta(seconds=1),
            observer=TransportObserver(),
            runtime=_shared_runtime(),
        )
        try:
            # casty's __aenter__ never returns while no seed answers (nor while the handshake fails).
            async with asyncio.timeout(timeout):
                await client.__aenter__()
        except TimeoutError as exc:
            files.close()
            raise LinkError(
                f"no answer from the node at {self._dial} within {timeout:.0f}s (or it could not prove that it "
                "is this pool's node: the TLS handshake failed)"
            ) from exc
        self._client, self._files = client, files
        self._ref = client.ref(task_executor, _ACTOR_KEY, at=self._advertise)

    async def run(self, task_id: str, payload: bytes, blobs: tuple[bytes, ...] = ()) -> bytes:
        if len(payload) > MAX_MESSAGE_BYTES - 1024:
            raise PayloadTooLarge(
                f"task {task_id} is {len(payload) / 2**20:.1f} MiB after compression; one message carries at "
                f"most {MAX_MESSAGE_BYTES / 2**20:.0f} MiB (large bytes, numpy and pandas arguments travel "
                "separately and are not limited by this; other large objects are)"
            )
        return await self._ask(RunTask(task_id, payload, blobs))

    async def put_blob(self, digest: bytes, data: bytes) -> None:
        """Upload a blob, in chunks that each fit one message."""
        total = len(data)
        view = memoryview(data)
        for offset in range(0, max(total, 1), BLOB_CHUNK_BYTES):
            chunk = bytes(view[offset : offset + BLOB_CHUNK_BYTES])
            answer = await self._ask(PutBlob(digest, offset, total, chunk))
            if answer < 0:
                raise LinkError(f"the node refused blob {digest.hex()[:12]}")

    async def cancel(self, task_ids: tuple[str, ...], *, stop_running: bool = True) -> int:
        return await self._ask(CancelTasks(task_ids, stop_running))

    async def heartbeat(self) -> bool:
        return await self._ask(Heartbeat())

    async def _ask(self, msg):  # type: ignore[no-untyped-def]
        if self._ref is None:
            raise LinkError("not connected")
        try:
            return await self._ref.ask(msg)
        except MessageTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from exc
        except Unavailable as exc:
            # Also what a process on the node's port that cannot prove it is the node causes: casty refuses the
            # handshake, so nothing was sent to it and nothing it says is read.
            raise LinkError(
                f"node {self._name} is unreachable, or whatever answers at {self._dial} failed the TLS "
                f"authentication ({type(exc).__name__}: {exc})"
            ) from exc
        except (ActorFailed, ConnectionError) as exc:
            raise LinkError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        client, self._client, self._ref = self._client, None, None
        files, self._files = self._files, None
        if client is not None:
            try:
                async with asyncio.timeout(5):
                    await client.__aexit__(None, None, None)
            except Exception:  # noqa: BLE001, S110  (closing a dead link is best effort)
                pass
        if files is not None:
            files.close()
