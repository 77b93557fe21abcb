"""Bytes on the wire: cloudpickle + lz4 framing of tasks, results and remote exceptions.

Everything that crosses between client and node is built here, so there is one place that knows the format.
A frame is one flag byte followed by the body: the flag says whether the body is lz4-compressed. Replies carry
one more status byte in front of the frame.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import cloudpickle
import lz4.frame

from skyward.errors import RemoteError

# Below this size lz4's framing costs more than it saves.
COMPRESS_THRESHOLD = 4096
# The most a frame decompresses to: one message's limit (`skyward.transport.MAX_MESSAGE_BYTES`). lz4 reaches ratios
# of 250:1, so without a cap a message within the limit could make its reader allocate 30 GB. Blobs, which may be
# larger and are uploaded in chunks, state their own cap.
MAX_DECOMPRESSED_BYTES = 128 * 1024 * 1024

_RAW = b"\x00"
_LZ4 = b"\x01"

STATUS_OK = 0
STATUS_ERROR = 1
STATUS_CANCELLED = 2
STATUS_MISSING_BLOBS = 3  # the node lacks blobs the task refers to: upload them and send it again
STATUS_CRASHED = 4  # the slot process running the task died (process slots; the agent lives on)


class WireError(ValueError):
    """Bytes that are not a frame this module wrote."""


def frame(body: bytes, *, probe: bool = False) -> bytes:
    """Wrap a pickle in a frame, lz4-compressed when it is large enough for that to pay.

    With `probe`, a sample is compressed first and incompressible bodies (random floats, already compressed
    data) are sent raw: compressing 100 MB that shrinks by 1% costs more than sending it.
    """
    if len(body) < COMPRESS_THRESHOLD:
        return _RAW + body
    if probe and len(body) > 1 << 20:
        sample = bytes(memoryview(body)[: 256 * 1024])
        if len(lz4.frame.compress(sample, compression_level=0)) > 0.9 * len(sample):
            return _RAW + body
    return _LZ4 + lz4.frame.compress(body, compression_level=0)


def unframe(
    data: bytes | bytearray | memoryview, max_size: int | None = MAX_DECOMPRESSED_BYTES
) -> bytes | memoryview:
    """The pickle inside a frame (a view, not a copy, when uncompressed).

    Raises `WireError` for non-frames, and for compressed bodies that would decompress to more than `max_size`
    bytes (``None``: no cap), before allocating more than that.
    """
    if not data:
        raise WireError("empty frame")
    view = memoryview(data)
    flag, body = bytes(view[:1]), view[1:]
    if flag == _LZ4:
        return _decompress(body, max_size)
    if flag != _RAW:
        raise WireError(f"unknown frame flag {flag!r}")
    return body


def _decompress(body: memoryview, max_size: int | None) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out = decompressor.decompress(body, max_length=-1 if max_size is None else max_size + 1)
    except RuntimeError as exc:
        raise WireError(f"corrupt lz4 body: {exc}") from exc
    if max_size is not None and len(out) > max_size:
        raise WireError(f"an lz4 body decompresses to more than {max_size / 2**20:.0f} MiB, the most a message carries")
    if not decompressor.eof:
        raise WireError("truncated lz4 body")
    return out


def dumps(obj: object) -> bytes:
    """Serialize `obj` with cloudpickle into a frame."""
    return frame(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def loads(data: bytes | bytearray | memoryview, max_size: int | None = MAX_DECOMPRESSED_BYTES) -> Any:
    """Inverse of `dumps`. Raises `WireError` for bytes that are not a frame (before any unpickling)."""
    return pickle.loads(unframe(data, max_size))


# --- replies -------------------------------------------------------------------------------------------------


def reply_ok(value: object, task_id: str) -> bytes:
    """A success reply; a value that cannot be pickled, or too large a one, becomes an error reply naming the task."""
    try:
        body = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = TypeError(
            f"the result of task {task_id} ({type(value).__name__}) could not be pickled: "
            f"{type(exc).__name__}: {exc}"
        )
        return reply_error(error)
    if len(body) > MAX_DECOMPRESSED_BYTES:  # the client would refuse it: say why here
        return reply_error(ValueError(
            f"the result of task {task_id} ({type(value).__name__}) is {len(body) / 2**20:.0f} MiB pickled; a "
            f"reply carries at most {MAX_DECOMPRESSED_BYTES / 2**20:.0f} MiB: return a smaller value, or write it "
            "to storage the client can read"
        ))  # fmt: skip
    return bytes([STATUS_OK]) + frame(body)


def reply_error(exc: BaseException) -> bytes:
    """An error reply. The exception travels pickled when it can; its type name, text and traceback always do."""
    tb_text = "".join(traceback.format_exception(exc))
    try:
        pickled: bytes | None = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pickled = None
    kind = type(exc)
    details = (f"{kind.__module__}.{kind.__qualname__}", str(exc), tb_text, pickled)
    return bytes([STATUS_ERROR]) + dumps(details)


def reply_cancelled() -> bytes:
    return bytes([STATUS_CANCELLED])


def reply_missing(digests: tuple[bytes, ...]) -> bytes:
    return bytes([STATUS_MISSING_BLOBS]) + b"".join(digests)


def reply_crashed(exit_code: int | None, signal: int | None, output: tuple[str, ...]) -> bytes:
    """The process that ran the task died under it: how it ended, and the last lines it wrote."""
    return bytes([STATUS_CRASHED]) + frame(pickle.dumps((exit_code, signal, tuple(output))))


def crash_of(reply: bytes) -> tuple[int | None, int | None, tuple[str, ...]] | None:
    """``(exit_code, signal, output)`` of a crash reply, or None for any other reply (digests: `blobs.DIGEST_SIZE`)."""
    if reply[:1] != bytes([STATUS_CRASHED]):
        return None
    exit_code, signal, output = pickle.loads(unframe(reply[1:]))
    return exit_code, signal, tuple(output)


def missing_blobs(reply: bytes, digest_size: int = 16) -> tuple[bytes, ...] | None:
    """The digests a missing-blobs reply names, or None for any other reply (digests: `blobs.DIGEST_SIZE`)."""
    if reply[:1] != bytes([STATUS_MISSING_BLOBS]):
        return None
    body = reply[1:]
    return tuple(body[i : i + digest_size] for i in range(0, len(body), digest_size))


def is_cancelled(reply: bytes) -> bool:
    return reply[:1] == bytes([STATUS_CANCELLED])


def decode_reply(reply: bytes, where: str) -> Any:
    """Return the value of a success reply, or raise the remote exception with its remote traceback attached.

    `where` names the node, for the note added to the exception.
    """
    if not reply:
        raise WireError("empty reply")
    status, frame = reply[0], reply[1:]
    if status == STATUS_OK:
        return loads(frame)
    if status == STATUS_CANCELLED:
        raise WireError("a cancelled task has no value")
    if status != STATUS_ERROR:
        raise WireError(f"unknown reply status {status}")
    type_name, message, tb_text, pickled = loads(frame)
    exc: BaseException
    try:
        exc = pickle.loads(pickled) if pickled is not None else RemoteError(type_name, message, tb_text)
    except Exception:
        exc = RemoteError(type_name, message, tb_text)
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message, tb_text)
    exc.remote_traceback = tb_text  # type: ignore[attr-defined]
    exc.add_note(f"\nRemote traceback (on {where}):\n{tb_text.rstrip()}")
    raise exc
