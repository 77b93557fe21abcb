"""Node side of blobs (see `skyward.blobs`): the bounded store of uploads, and unpickling tasks that refer to them."""

from __future__ import annotations

import io
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from skyward import wire
from skyward.blob_format import deserialize
from skyward.blob_kinds import private_copy, shared_view

# The persistent id of a blob in a task's pickle: (PID_TAG, digest, writable copy wanted).
PID_TAG = "skyward-blob"


class BlobMissing(KeyError):
    """A task refers to a blob the node does not hold (never uploaded, or evicted)."""

    def __init__(self, digest: bytes) -> None:
        super().__init__(digest.hex())
        self.digest = digest


class BlobUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Callable[[bytes], object]) -> None:
        super().__init__(file)
        self._resolve = resolve

    def persistent_load(self, pid: object) -> object:
        if not (
            isinstance(pid, tuple)
            and len(pid) == 3
            and pid[0] == PID_TAG
            and isinstance(pid[1], bytes)
            and isinstance(pid[2], bool)
        ):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        shared = self._resolve(pid[1])
        return private_copy(shared) if pid[2] else shared_view(shared)


def loads_with_blobs(frame: bytes, resolve: Callable[[bytes], object]) -> Any:
    return BlobUnpickler(io.BytesIO(wire.unframe(frame)), resolve).load()


def rebuild(data: bytes | bytearray) -> object:
    """A blob's object from its uploaded bytes; arrays and memoryviews come back read-only (tasks share them).

    Arrays uploaded out of band (`skyward.blob_format`) are views of `data`: no copy.
    """
    obj = deserialize(data)
    if type(obj).__name__ == "ndarray":
        obj.flags.writeable = False  # type: ignore[attr-defined]
    elif type(obj) is memoryview:
        obj = obj.toreadonly()
    return obj


class BlobStore:
    """Node side: uploaded blobs, least recently used evicted past `limit_bytes`.

    Holds each blob's bytes (for process slots, which rebuild it themselves) and, once a thread slot asked for
    it, the rebuilt object too.
    """

    def __init__(self, limit_bytes: int = 2 << 30) -> None:
        self._limit = limit_bytes
        self._lock = threading.Lock()
        self._data: OrderedDict[bytes, bytearray] = OrderedDict()
        self._objects: dict[bytes, object] = {}
        self._bytes = 0
        self._partial: dict[bytes, bytearray] = {}

    def put_chunk(self, digest: bytes, offset: int, total: int, chunk: bytes) -> bool:
        """Store part of an upload; answers True once the blob is complete."""
        if offset == 0:
            self._partial[digest] = bytearray(total)
        buffer = self._partial.get(digest)
        if buffer is None or len(buffer) != total or offset + len(chunk) > total:
            self._partial.pop(digest, None)
            raise ValueError(
                f"blob {digest.hex()[:12]}: chunk at {offset} does not fit an upload of {total} bytes"
            )
        buffer[offset : offset + len(chunk)] = chunk
        if offset + len(chunk) < total:
            return False
        del self._partial[digest]
        self._add(digest, buffer)
        return True

    def _add(self, digest: bytes, data: bytearray) -> None:
        with self._lock:
            if digest in self._data:
                return
            self._data[digest] = data
            self._bytes += len(data)
            while self._bytes > self._limit and len(self._data) > 1:
                old, old_data = self._data.popitem(last=False)
                self._objects.pop(old, None)
                self._bytes -= len(old_data)

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._data

    def data(self, digest: bytes) -> bytearray:
        with self._lock:
            try:
                self._data.move_to_end(digest)
                return self._data[digest]
            except KeyError:
                raise BlobMissing(digest) from None

    def get(self, digest: bytes) -> object:
        with self._lock:
            obj = self._objects.get(digest)
        if obj is None:
            obj = rebuild(self.data(digest))
            with self._lock:
                if digest in self._data:
                    self._objects[digest] = obj
        return obj
