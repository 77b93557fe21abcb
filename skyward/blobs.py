"""Large arguments travel to each node once: content-addressed blobs.

When a task is pickled, every large object in it (`bytes`, `bytearray`, `memoryview`, numpy arrays, pandas
frames and series of at least `BLOB_THRESHOLD` bytes; see `skyward.blob_kinds`) is replaced by the digest of
its whole content, hashed at every submit. The client uploads a digest to a node the first time a task there
needs it; the node keeps blobs in a bounded cache and tasks refer to them. GridSearchCV's 80 fits over one 50 MB `X`
send `X` once per node instead of 80 times; an `X` changed in place between two submits has a new digest and
travels again.

What a task gets on the node is decided when the call is encoded (`BlobPolicy`, `writable`): by default the
node's shared copy, read-only (as joblib's memory-mapped arguments are); or a private writable copy, made from
the node's copy for that task alone (uploaded once all the same).
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import types
from collections import ChainMap, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import cloudpickle

from skyward import wire
from skyward.blob_format import serialize
from skyward.blob_kinds import SIZERS, content_digest, nbytes, reduce_memoryview
from skyward.blob_store import PID_TAG as _PID_TAG
from skyward.blob_store import BlobMissing, BlobStore, loads_with_blobs, rebuild
from skyward.function_pickles import pickled_by_value, reduce_code, reduce_function

# GridSearchCV's y (500 KB for 62,500 rows) sits under 1 MiB: at 1 MiB it went inline with each of 80 fits
# (161 MB sent); at 256 KiB it travels once per node (108 MB).
BLOB_THRESHOLD = 256 * 1024
DIGEST_SIZE = 16


@dataclass(frozen=True, slots=True)
class BlobPolicy:
    """Which large arguments of a call tasks get as the node's shared, read-only copy.

    Attributes:
        share_above: objects larger than this many bytes are shared read-only; the others arrive as private
            writable copies (still uploaded once per node). ``None``: none is shared, all are writable. The
            default, 0, shares every blob.
    """

    share_above: int | None = 0

    def shares(self, size: int) -> bool:
        return self.share_above is not None and size > self.share_above


SHARED = BlobPolicy()


@dataclass(frozen=True, slots=True)
class Writable[T]:
    """An argument marked to arrive as a private writable copy (see `writable`)."""

    value: T

    def __reduce__(self) -> tuple[Callable[[T], T], tuple[T]]:
        # Small enough to travel inline: unpickling makes a fresh, writable object anyway.
        return _unwrapped, (self.value,)


def _unwrapped[T](value: T) -> T:
    return value


def writable[T](value: T) -> T:
    """Mark a large argument so each task on a node gets a writable copy of its own.

    Large arguments (numpy arrays, `bytearray`, `memoryview`, pandas objects of 256 KiB or more) arrive by
    default as the node's shared copy, read-only. Wrapped in ``sky.writable``, the argument still travels to
    each node once, and each task gets a private copy it may modify; writes stay on the node (they are not
    sent back). The function receives the object itself, not the wrapper::

        fill(sky.writable(X)) >> pool

    Only for calls sent to a pool: run locally, the function would receive the wrapper.
    """
    kind = type(value)
    if kind is bytes:
        raise TypeError("bytes are immutable: pass a bytearray to sky.writable")
    size = nbytes(value)
    if SIZERS[kind] is None:
        raise TypeError(
            f"sky.writable takes a numpy array, bytearray, memoryview or pandas object, not {kind.__name__}"
        )
    if size < 0:
        raise TypeError("an array of object dtype is pickled with each task: it always arrives writable")
    return Writable(value)  # type: ignore[return-value]


class BlobIndex:
    """Client side: digests of large objects, and their serialized form for upload (cached by digest)."""

    def __init__(self, threshold: int = BLOB_THRESHOLD, serialized_cache_bytes: int = 1 << 30) -> None:
        self.threshold = threshold
        self._seed = int.from_bytes(os.urandom(8), "little")
        self._lock = threading.Lock()
        self._serialized: OrderedDict[bytes, bytes] = OrderedDict()
        self._serialized_bytes = 0
        self._serialized_limit = serialized_cache_bytes

    def digest(self, obj: object) -> bytes:
        """The digest of `obj`'s whole content, afresh: a write in place since the last call shows."""
        return content_digest(obj, self._seed)

    def serialized(self, digest: bytes, obj: object) -> bytes:
        """The bytes to upload for `obj`, serialized once per content for every node that needs them."""
        with self._lock:
            data = self._serialized.get(digest)
            if data is not None:
                self._serialized.move_to_end(digest)
                return data
        data = serialize(obj, _UploadPickler)
        with self._lock:
            self._serialized[digest] = data
            self._serialized_bytes += len(data)
            while self._serialized_bytes > self._serialized_limit and len(self._serialized) > 1:
                _, old = self._serialized.popitem(last=False)
                self._serialized_bytes -= len(old)
        return data


class _UploadPickler(cloudpickle.Pickler):
    """cloudpickle; memoryviews (which pickle cannot take) as their bytes, format and shape; functions by value
    with their code pickled once (`skyward.function_pickles`)."""

    # Flat (the maps of cloudpickle's own ChainMap, still live): the pickler looks every object's type up here,
    # and each nested ChainMap level is a Python-level lookup.
    dispatch_table: ClassVar[ChainMap[type, Any]] = ChainMap(
        {memoryview: reduce_memoryview, types.CodeType: reduce_code}, *cloudpickle.Pickler.dispatch_table.maps
    )

    def __init__(
        self, file: io.BytesIO, buffer_callback: Callable[[pickle.PickleBuffer], None] | None = None
    ) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL, buffer_callback=buffer_callback)

    def reducer_override(self, obj: object) -> Any:
        if type(obj) is types.FunctionType:
            return reduce_function(obj, self.globals_ref) if pickled_by_value(obj) else NotImplemented
        return super().reducer_override(obj)


class BlobPickler(_UploadPickler):
    """cloudpickle, with large objects swapped for digests.

    `blobs` collects the serialized form of each, taken now: the task runs with the argument as it was when
    it was submitted, even if it changes before the upload.
    """

    def __init__(self, file: io.BytesIO, index: BlobIndex, policy: BlobPolicy = SHARED) -> None:
        super().__init__(file)
        self._index = index
        self._policy = policy
        self._seen: dict[tuple[int, bool], tuple[str, bytes, bool]] = {}  # hashed once per object per task
        self.blobs: dict[bytes, bytes] = {}

    def persistent_id(self, obj: object) -> tuple[str, bytes, bool] | None:  # type: ignore[override]
        kind = type(obj)
        if kind is Writable:
            return self._blob_id(obj.value, writable=True)  # type: ignore[attr-defined]
        if SIZERS.get(kind, nbytes) is None:  # inlined fast path: most objects are of a known, small type
            return None
        return self._blob_id(obj, writable=False)

    def _blob_id(self, obj: object, writable: bool) -> tuple[str, bytes, bool] | None:
        size = nbytes(obj)
        if size < self._index.threshold:
            return None  # inline (a Writable is then pickled as its value: fresh, so writable)
        key = (id(obj), writable)  # the objects stay alive while the task is pickled: ids are not reused
        pid = self._seen.get(key)
        if pid is None:
            digest = self._index.digest(obj)
            self.blobs[digest] = self._index.serialized(digest, obj)
            pid = self._seen[key] = (_PID_TAG, digest, writable or not self._policy.shares(size))
        return pid


class _FoundBlob(Exception):
    """A large object met by `_InlinePickler`: the call needs the blob pickler."""


class _InlinePickler(_UploadPickler):
    """The first try of `dumps_with_blobs`, for the common call that holds no large object.

    The blob pickler's `persistent_id` is a Python call for every object pickled (a hundred or so for a
    function by value with a few globals; about 40% of the cost). This pickler has none: it stops at the
    first large array, pandas object, memoryview or `Writable`, which all reach `reducer_override`. Large
    `bytes` and `bytearray` do not (the C pickler writes them before asking), but they make the pickle at
    least as long as themselves: the file (`_Bounded`) stops there, before copying them.
    """

    def __init__(self, file: io.BytesIO, threshold: int) -> None:
        super().__init__(file)
        self._threshold = threshold

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if kind is Writable:
            if nbytes(obj.value) >= self._threshold:  # type: ignore[attr-defined]
                raise _FoundBlob
        elif SIZERS.get(kind, nbytes) is not None and nbytes(obj) >= self._threshold:
            raise _FoundBlob
        return super().reducer_override(obj)


class _Bounded(io.BytesIO):
    """The first try's file: it stops the pickle once it reaches `limit` bytes, before a large `bytes` or
    `bytearray` is copied in (the C pickler writes those to the file directly, after its current frame)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: Any, /) -> int:
        if self.tell() + memoryview(data).nbytes >= self._limit:
            raise _FoundBlob
        return super().write(data)


def dumps_with_blobs(
    obj: object, index: BlobIndex, policy: BlobPolicy = SHARED
) -> tuple[bytes, dict[bytes, bytes]]:
    """Pickle `obj` (as `wire.dumps` does), large objects replaced by digests.

    Returns the frame and the uploads it needs, by digest.
    """
    buffer = _Bounded(index.threshold)
    try:
        _InlinePickler(buffer, index.threshold).dump(obj)
    except _FoundBlob:
        pass
    else:  # shorter than the threshold: so no bytes or bytearray in it reaches it
        return wire.frame(buffer.getvalue()), {}
    whole = io.BytesIO()
    pickler = BlobPickler(whole, index, policy)
    pickler.dump(obj)
    return wire.frame(whole.getvalue()), pickler.blobs


__all__ = [
    "BLOB_THRESHOLD",
    "DIGEST_SIZE",
    "SHARED",
    "BlobIndex",
    "BlobMissing",
    "BlobPickler",
    "BlobPolicy",
    "BlobStore",
    "Writable",
    "dumps_with_blobs",
    "loads_with_blobs",
    "rebuild",
    "writable",
]
