"""Large arguments travel to each node once: content-addressed blobs.

When a task is pickled, every large object in it (`bytes`, `bytearray`, numpy arrays, pandas frames and
series of at least `BLOB_THRESHOLD` bytes) is replaced by its content digest. The client uploads a digest to a
node the first time a task there needs it; the node keeps blobs in a bounded cache and tasks refer to them.
GridSearchCV's 80 fits over one 50 MB `X` send `X` once per node instead of 80 times.

Objects are treated as immutable while tasks use them, as joblib's read-only memmapping does: a digest is
computed once per object and reused while a sampled fingerprint of its contents stays the same, and numpy arrays
rebuilt on a node are read-only.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import cloudpickle

from skyward import wire

# GridSearchCV's y (500 KB for 62,500 rows) sits under 1 MiB: at 1 MiB it went inline with each of 80 fits
# (161 MB sent); at 256 KiB it travels once per node (108 MB). Hashing 256 KiB takes ~0.1 ms.
BLOB_THRESHOLD = 256 * 1024
DIGEST_SIZE = 20
_PID_TAG = "skyward-blob"
_SAMPLE_POINTS = 4096


class BlobMissing(KeyError):
    """A task refers to a blob the node does not hold (never uploaded, or evicted)."""

    def __init__(self, digest: bytes) -> None:
        super().__init__(digest.hex())
        self.digest = digest


# --- recognizing large objects -----------------------------------------------------------------------------


def _bytes_size(obj: Any) -> int:
    return len(obj)


def _array_size(obj: Any) -> int:
    return -1 if obj.dtype.hasobject else int(obj.nbytes)


def _frame_size(obj: Any) -> int:
    return int(obj.memory_usage(index=True, deep=False).sum())


def _series_size(obj: Any) -> int:
    return int(obj.memory_usage(index=True, deep=False))


def _sizer_for(kind: type) -> Callable[[Any], int] | None:
    if kind is bytes or kind is bytearray:
        return _bytes_size
    module, name = kind.__module__, kind.__name__
    if module == "numpy" and name == "ndarray":
        return _array_size
    if module.startswith("pandas.") and name == "DataFrame":
        return _frame_size
    if module.startswith("pandas.") and name == "Series":
        return _series_size
    return None


# The pickler asks about every object it meets (a joblib batch holds about a hundred): one dict lookup per type.
_SIZERS: dict[type, Callable[[Any], int] | None] = {}


def _nbytes(obj: object) -> int:
    """Size of a candidate, or -1 for an object that is never a blob."""
    kind = type(obj)
    try:
        sizer = _SIZERS[kind]
    except KeyError:
        sizer = _SIZERS[kind] = _sizer_for(kind)
    return -1 if sizer is None else sizer(obj)


def _fingerprint(obj: Any) -> object:
    """A cheap summary that changes when a mutable object is modified in place (most of the time)."""
    kind = type(obj)
    if kind is bytes:
        return None  # immutable
    if kind is bytearray:
        step = max(1, len(obj) // _SAMPLE_POINTS)
        return (len(obj), hashlib.blake2b(bytes(obj[::step]), digest_size=16).digest())
    if kind.__name__ == "ndarray":
        flat = obj.reshape(-1) if obj.flags.c_contiguous else obj.ravel(order="K")
        step = max(1, flat.size // _SAMPLE_POINTS)
        sample = flat[::step].tobytes()
        return (obj.shape, obj.dtype.str, obj.strides, hashlib.blake2b(sample, digest_size=16).digest())
    # pandas
    import pandas as pd

    step = max(1, len(obj) // _SAMPLE_POINTS)
    sample = pd.util.hash_pandas_object(obj.iloc[::step], index=True).to_numpy().tobytes()
    return (obj.shape, hashlib.blake2b(sample, digest_size=16).digest())


def _content_digest(obj: Any) -> bytes:
    # sha256 rather than blake2b: CPUs with SHA extensions hash it about twice as fast.
    digest = hashlib.sha256()
    kind = type(obj)
    if kind is bytes or kind is bytearray:
        digest.update(kind.__name__.encode())
        digest.update(obj)
    elif kind.__name__ == "ndarray":
        import numpy as np

        digest.update(f"ndarray{obj.dtype.str}{obj.shape}".encode())
        digest.update(memoryview(np.ascontiguousarray(obj)).cast("B"))
    else:  # pandas: its pickle is its content
        digest.update(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return digest.digest()[:DIGEST_SIZE]


class BlobIndex:
    """Client side: digests of large objects, and their serialized form for upload.

    Digests are remembered per live object (weakly where the type allows, else for the most recent few), so a
    50 MB array passed to 80 tasks is hashed once.
    """

    def __init__(self, threshold: int = BLOB_THRESHOLD, serialized_cache_bytes: int = 1 << 30) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[object, bytes, object]] = {}  # id -> (ref, digest, fingerprint)
        self._strong: OrderedDict[int, object] = OrderedDict()  # keeps non-weakrefable objects' ids valid
        self._serialized: OrderedDict[bytes, bytes] = OrderedDict()
        self._serialized_bytes = 0
        self._serialized_limit = serialized_cache_bytes

    def digest(self, obj: object) -> bytes:
        key = id(obj)
        fingerprint = _fingerprint(obj)
        with self._lock:
            entry = self._by_id.get(key)
        if entry is not None:
            ref, digest, seen = entry
            alive = ref() if isinstance(ref, weakref.ref) else ref
            if alive is obj and seen == fingerprint:
                return digest
        digest = _content_digest(obj)
        self._remember(obj, digest, fingerprint)
        return digest

    def _remember(self, obj: object, digest: bytes, fingerprint: object) -> None:
        key = id(obj)
        try:
            ref: object = weakref.ref(obj, lambda _, key=key: self._forget(key))
        except TypeError:  # bytes: keep the object alive so its id cannot be reused meanwhile
            ref = obj
            with self._lock:
                self._strong[key] = obj
                while len(self._strong) > 16:
                    old, _ = self._strong.popitem(last=False)
                    self._by_id.pop(old, None)
        with self._lock:
            self._by_id[key] = (ref, digest, fingerprint)

    def _forget(self, key: int) -> None:
        with self._lock:
            self._by_id.pop(key, None)

    def serialized(self, digest: bytes, obj: object) -> bytes:
        """The bytes to upload for `obj`, serialized once for every node that needs them."""
        with self._lock:
            data = self._serialized.get(digest)
            if data is not None:
                self._serialized.move_to_end(digest)
                return data
        data = wire.frame(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), probe=True)
        with self._lock:
            self._serialized[digest] = data
            self._serialized_bytes += len(data)
            while self._serialized_bytes > self._serialized_limit and len(self._serialized) > 1:
                _, old = self._serialized.popitem(last=False)
                self._serialized_bytes -= len(old)
        return data


class BlobPickler(cloudpickle.Pickler):
    """cloudpickle, with large objects swapped for digests (collected in `blobs`)."""

    def __init__(self, file: io.BytesIO, index: BlobIndex) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._index = index
        self.blobs: dict[bytes, object] = {}

    def persistent_id(self, obj: object) -> tuple[str, bytes] | None:  # type: ignore[override]
        sizer = _SIZERS.get(type(obj), _nbytes)  # inlined fast path: most objects are of a known, small type
        if sizer is None or sizer(obj) < self._index.threshold:
            return None
        digest = self._index.digest(obj)
        self.blobs[digest] = obj
        return (_PID_TAG, digest)


def dumps_with_blobs(obj: object, index: BlobIndex) -> tuple[bytes, dict[bytes, object]]:
    """Pickle `obj` (as `wire.dumps` does), large objects replaced by digests; returns the frame and the blobs."""
    buffer = io.BytesIO()
    pickler = BlobPickler(buffer, index)
    pickler.dump(obj)
    return wire.frame(buffer.getvalue()), pickler.blobs


# --- node side ---------------------------------------------------------------------------------------------


class BlobUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, resolve: Callable[[bytes], object]) -> None:
        super().__init__(file)
        self._resolve = resolve

    def persistent_load(self, pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _PID_TAG and isinstance(pid[1], bytes)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self._resolve(pid[1])


def loads_with_blobs(frame: bytes, resolve: Callable[[bytes], object]) -> Any:
    return BlobUnpickler(io.BytesIO(wire.unframe(frame)), resolve).load()


def rebuild(data: bytes | bytearray) -> object:
    """A blob's object from its uploaded bytes; numpy arrays come back read-only (they are shared by tasks)."""
    obj = wire.loads(data, max_size=None)  # blobs come only from the pool's client, and may exceed a message
    if type(obj).__name__ == "ndarray":
        obj.flags.writeable = False  # type: ignore[attr-defined]
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
            raise ValueError(f"blob {digest.hex()[:12]}: chunk at {offset} does not fit an upload of {total} bytes")
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
