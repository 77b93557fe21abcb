"""How a blob travels: its pickle, with the memory of large arrays laid out after it rather than inside it.

Pickled in-band, a numpy array (or a pandas column) is copied into the pickle, the pickle copied into its frame,
and the node copies it once more when it unpickles it, then holds both the uploaded bytes and the array. Pickled
with protocol 5's out-of-band buffers, the pickle holds only the array's header and the array's memory follows
it in the upload as it is: the client copies it once (the snapshot the tasks run with, taken at submit), and
the node rebuilds the array over the uploaded bytes themselves, so it holds one copy of each blob, not two.

Layout: the flag byte 0x02, the header pickle's length (8 bytes, little endian) and the header, then for each
buffer its length (8 bytes) and its bytes. Data that compresses (the probe of `skyward.wire.frame`) travels as
an lz4 frame as before, and so do blobs without such buffers (bytes, bytearray, memoryview).
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from typing import Protocol

import lz4.frame

from skyward import wire

_OUT_OF_BAND = 0x02
_LENGTH = struct.Struct("<Q")
_PROBE_BYTES = 256 * 1024


class _Dumper(Protocol):
    def dump(self, obj: object, /) -> None: ...


PicklerFactory = Callable[[io.BytesIO, Callable[[pickle.PickleBuffer], None] | None], _Dumper]


def serialize(obj: object, pickler: PicklerFactory) -> bytes:
    """The bytes to upload for `obj`; `pickler(file, buffer_callback)` makes the pickler to use."""
    buffers: list[pickle.PickleBuffer] = []
    header = io.BytesIO()
    pickler(header, buffers.append).dump(obj)
    raws = [buffer.raw() for buffer in buffers]
    if not raws or _compressible(raws):
        inline = io.BytesIO()
        pickler(inline, None).dump(obj)
        return wire.frame(inline.getvalue(), probe=True)
    parts: list[bytes | memoryview] = [bytes([_OUT_OF_BAND]), _LENGTH.pack(header.tell()), header.getbuffer()]
    for raw in raws:
        parts += (_LENGTH.pack(raw.nbytes), raw)
    return b"".join(parts)  # the one copy: the argument as it is now


def _compressible(raws: list[memoryview]) -> bool:
    largest = max(raws, key=lambda raw: raw.nbytes)
    sample = bytes(largest[:_PROBE_BYTES])
    return len(sample) >= wire.COMPRESS_THRESHOLD and len(
        lz4.frame.compress(sample, compression_level=0)
    ) <= 0.9 * len(sample)


def deserialize(data: bytes | bytearray) -> object:
    """Inverse of `serialize`. Arrays rebuilt from an out-of-band upload share its memory: keep `data` alive
    (they do: they refer to it) and never resize it."""
    if not data or data[0] != _OUT_OF_BAND:
        return wire.loads(
            data, max_size=None
        )  # blobs come only from the pool's client, and may exceed a message
    view = memoryview(data)
    end = len(view)
    if end < 1 + _LENGTH.size:
        raise wire.WireError("a blob too short for its header")
    (length,) = _LENGTH.unpack_from(view, 1)
    position = 1 + _LENGTH.size + length
    if position > end:
        raise wire.WireError("a blob's header runs past its end")
    header = view[1 + _LENGTH.size : position]
    buffers = []
    while position < end:
        if position + _LENGTH.size > end:
            raise wire.WireError("a blob's buffer length runs past its end")
        (length,) = _LENGTH.unpack_from(view, position)
        position += _LENGTH.size
        if position + length > end:
            raise wire.WireError("a blob's buffer runs past its end")
        buffers.append(view[position : position + length])
        position += length
    return pickle.loads(header, buffers=buffers)
