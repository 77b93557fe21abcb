"""A task's reply: the one place that knows its status bytes, as encoders and one decoder into typed replies.

A reply is one status byte then its body (the frames are `skyward.wire`'s):

=====================  ==========================================================================
status                 body
=====================  ==========================================================================
0 `Ok`                 frame of the pickled value
1 `Error`              frame of ``(type name, message, traceback text, pickled exception or None)``
2 `Cancelled`          nothing
3 `MissingBlobs`       the digests of the blobs the node lacks, back to back (`blobs.DIGEST_SIZE` each)
4 `Crashed`            frame of ``(exit code, signal, last output lines)``: the slot process died
=====================  ==========================================================================

The node encodes with `ok`, `error`, `cancelled`, `missing` and `crashed`; the client classifies with `decode`
once, on the I/O loop. `Ok` and `Error` keep their frame and unpickle it only in `Ok.value`/`Error.exception`,
which the client calls on its delivery thread: user pickles never run on the I/O loop.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

import cloudpickle

from skyward import wire
from skyward.errors import RemoteError

STATUS_OK = 0
STATUS_ERROR = 1
STATUS_CANCELLED = 2
STATUS_MISSING_BLOBS = 3  # the node lacks blobs the task refers to: upload them and send it again
STATUS_CRASHED = 4  # the slot process running the task died (process slots; the agent lives on)

DIGEST_SIZE = 16  # `skyward.blobs.DIGEST_SIZE`, repeated here so that decoding needs no blob store
# Values whose pickle cloudpickle leaves to the C pickler: the same bytes, without building cloudpickle's
# pickler for every reply (~6 us of a node's time per task).
_PLAIN_VALUES = frozenset({int, float, bool, str, bytes, type(None)})


# `Ok` and `Error` are made for every reply: not frozen (a frozen dataclass's constructor costs three times as
# much); nothing changes one once made.
@dataclass(slots=True)
class Ok:
    """The task returned; `frame` holds its pickled value."""

    frame: bytes | memoryview  # a view of the reply: no copy of a large value

    def value(self) -> Any:
        """The returned value (unpickled here, size-capped: `wire.MAX_DECOMPRESSED_BYTES`)."""
        frame = self.frame
        if frame[:1] == b"\x00":  # a raw frame (`skyward.wire`): most values are small, not compressed
            return pickle.loads(frame[1:])
        return wire.loads(frame)


@dataclass(slots=True)
class Error:
    """The task raised; `frame` holds the exception's details."""

    frame: bytes | memoryview

    def exception(self, where: str) -> BaseException:
        """The remote exception, with its remote traceback as a note naming the node `where`."""
        type_name, message, tb_text, pickled = wire.loads(self.frame)
        exc: BaseException
        try:
            exc = pickle.loads(pickled) if pickled is not None else RemoteError(type_name, message, tb_text)
        except Exception:  # noqa: BLE001  (a type this side cannot rebuild arrives as RemoteError)
            exc = RemoteError(type_name, message, tb_text)
        if not isinstance(exc, BaseException):
            exc = RemoteError(type_name, message, tb_text)
        exc.remote_traceback = tb_text  # type: ignore[attr-defined]
        exc.add_note(f"\nRemote traceback (on {where}):\n{tb_text.rstrip()}")
        return exc


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The task was withdrawn before or while it ran."""


@dataclass(frozen=True, slots=True)
class MissingBlobs:
    """The node lacks these blobs: upload them and send the task again."""

    digests: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Crashed:
    """The process running the task died: its exit code or signal, and the last lines it wrote."""

    exit_code: int | None
    signal: int | None
    output: tuple[str, ...]


Reply = Ok | Error | Cancelled | MissingBlobs | Crashed


def decode(data: bytes | bytearray | memoryview, digest_size: int = DIGEST_SIZE) -> Reply:
    """Classify a reply's bytes. Raises `wire.WireError` for an empty reply, an unknown status, a bad body."""
    if not data:
        raise wire.WireError("empty reply")
    status, body = data[0], memoryview(data)[1:]
    if status == STATUS_OK:
        return Ok(body)
    if status == STATUS_ERROR:
        return Error(body)
    if status == STATUS_CANCELLED:
        return Cancelled()
    if status == STATUS_MISSING_BLOBS:
        if len(body) % digest_size:
            raise wire.WireError(f"a missing-blobs reply of {len(body)} bytes is not whole digests")
        return MissingBlobs(tuple(bytes(body[i : i + digest_size]) for i in range(0, len(body), digest_size)))
    if status == STATUS_CRASHED:
        try:  # a tuple of ints and strs from the node's agent: plain pickle
            exit_code, signal, output = pickle.loads(wire.unframe(body))
            return Crashed(exit_code, signal, tuple(output))
        except wire.WireError:
            raise
        except Exception as exc:
            raise wire.WireError(f"a malformed crash reply: {type(exc).__name__}: {exc}") from exc
    raise wire.WireError(f"unknown reply status {status}")


def is_outcome(data: bytes | bytearray | memoryview) -> bool:
    """Whether a reply (the node's own, well formed) is an outcome, `Ok` or `Error`, without decoding it."""
    return bool(data) and data[0] in (STATUS_OK, STATUS_ERROR)


def result(data: bytes, where: str) -> Any:
    """The value of an `Ok` reply's bytes; raises an `Error` one's remote exception, `WireError` for others."""
    reply = decode(data)
    if isinstance(reply, Ok):
        return reply.value()
    if isinstance(reply, Error):
        raise reply.exception(where)
    raise wire.WireError(f"a {type(reply).__name__} reply has no value")


# --- encoders (on the node) -------------------------------------------------------------------------


def ok(value: object, task_id: str) -> bytes:
    """A success reply; a value that cannot be pickled, or is too large, becomes an error reply naming the task."""
    try:
        if type(value) in _PLAIN_VALUES:
            body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            body = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001  (any unpicklable result becomes an error reply naming it)
        return error(TypeError(
            f"the result of task {task_id} ({type(value).__name__}) could not be pickled: "
            f"{type(exc).__name__}: {exc}"
        ))  # fmt: skip
    if len(body) > wire.MAX_DECOMPRESSED_BYTES:  # the client would refuse it: say why here
        return error(ValueError(
            f"the result of task {task_id} ({type(value).__name__}) is {len(body) / 2**20:.0f} MiB "
            f"pickled; a reply carries at most {wire.MAX_DECOMPRESSED_BYTES / 2**20:.0f} MiB: return a "
            "smaller value, or "
            "write it to storage the client can read"
        ))  # fmt: skip
    return bytes([STATUS_OK]) + wire.frame(body)


def error(exc: BaseException) -> bytes:
    """An error reply: the exception pickled when it can be; its type name, text and traceback always."""
    tb_text = "".join(traceback.format_exception(exc))
    try:
        pickled: bytes | None = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  (the text form always travels; the pickle only when it can)
        pickled = None
    kind = type(exc)
    details = (f"{kind.__module__}.{kind.__qualname__}", str(exc), tb_text, pickled)
    return bytes([STATUS_ERROR]) + wire.dumps(details)


def cancelled() -> bytes:
    """A reply for a task withdrawn before or while it ran."""
    return bytes([STATUS_CANCELLED])


def missing(digests: tuple[bytes, ...]) -> bytes:
    """A reply naming the blobs the node lacks."""
    return bytes([STATUS_MISSING_BLOBS]) + b"".join(digests)


def crashed(exit_code: int | None, signal: int | None, output: tuple[str, ...]) -> bytes:
    """The process that ran the task died under it: how it ended, and the last lines it wrote."""
    return bytes([STATUS_CRASHED]) + wire.frame(pickle.dumps((exit_code, signal, tuple(output))))
