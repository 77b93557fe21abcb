"""Bytes on the wire: cloudpickle + lz4 framing of tasks, results and remote exceptions.

Everything that crosses between client and node is built here, so there is one place that knows the format.
A frame is one flag byte followed by the body: the flag says whether the body is lz4-compressed. Replies carry
one more status byte in front of the frame: `skyward.reply` encodes and decodes them.
"""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle
import lz4.frame

# Below this size lz4's framing costs more than it saves.
COMPRESS_THRESHOLD = 4096
# The most a frame decompresses to: one message's limit (`skyward.transport.MAX_MESSAGE_BYTES`). lz4 reaches ratios
# of 250:1, so without a cap a message within the limit could make its reader allocate 30 GB. Blobs, which may be
# larger and are uploaded in chunks, state their own cap.
MAX_DECOMPRESSED_BYTES = 128 * 1024 * 1024

_RAW = b"\x00"
_LZ4 = b"\x01"


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
        raise WireError(
            f"an lz4 body decompresses to more than {max_size / 2**20:.0f} MiB, the most a message carries"
        )
    if not decompressor.eof:
        raise WireError("truncated lz4 body")
    return out


def dumps(obj: object) -> bytes:
    """Serialize `obj` with cloudpickle into a frame."""
    return frame(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def loads(data: bytes | bytearray | memoryview, max_size: int | None = MAX_DECOMPRESSED_BYTES) -> Any:
    """Inverse of `dumps`. Raises `WireError` for bytes that are not a frame (before any unpickling)."""
    return pickle.loads(unframe(data, max_size))
