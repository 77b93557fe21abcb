"""What a large argument is, what identifies it, and the copy of it each task gets on a node.

The kinds: `bytes`, `bytearray`, `memoryview`, numpy arrays (not of object dtype: their elements are Python
objects, pickled inline) and pandas frames and series.

Identity is the whole content, hashed at every submit with xxh3-128 (13 GB/s on one core of the machine
this was written on, against 1.2 GB/s for sha256). A cheaper test (a fingerprint of a sample, an id cached
per object) misses writes made in place between two submits and sends the node's stale copy; hashing 50 MB
takes ~4 ms. The hash is keyed with a random seed per client process, so data crafted to collide with another
argument's digest would have to be crafted against a seed it cannot see.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import cloudpickle
import xxhash

# Rows of a non-contiguous array hashed per contiguous copy: bounds the temporary memory to a few MB.
_CHUNK_BYTES = 4 << 20


# --- sizes: which objects are blobs ----------------------------------------------------------------------


def _bytes_size(obj: Any) -> int:
    return obj.nbytes if type(obj) is memoryview else len(obj)


def _array_size(obj: Any) -> int:
    return -1 if obj.dtype.hasobject else int(obj.nbytes)


def _frame_size(obj: Any) -> int:
    return int(obj.memory_usage(index=True, deep=False).sum())


def _series_size(obj: Any) -> int:
    return int(obj.memory_usage(index=True, deep=False))


def _sizer_for(kind: type) -> Callable[[Any], int] | None:
    if kind is bytes or kind is bytearray or kind is memoryview:
        return _bytes_size
    module, name = kind.__module__, kind.__name__
    if module == "numpy" and name == "ndarray":
        return _array_size
    if _is_pandas(kind) and name == "DataFrame":
        return _frame_size
    if _is_pandas(kind) and name == "Series":
        return _series_size
    return None


def _is_pandas(kind: type) -> bool:
    # pandas 3 names its classes' module "pandas"; pandas 2, "pandas.core.frame" and so on.
    return kind.__module__ == "pandas" or kind.__module__.startswith("pandas.")


# The pickler asks about every object it meets (a joblib batch holds about a hundred): a dict lookup per type.
SIZERS: dict[type, Callable[[Any], int] | None] = {}


def nbytes(obj: object) -> int:
    """Size of a candidate blob, or -1 for an object that is never one."""
    kind = type(obj)
    try:
        sizer = SIZERS[kind]
    except KeyError:
        sizer = SIZERS[kind] = _sizer_for(kind)
    return -1 if sizer is None else sizer(obj)


# --- identity -----------------------------------------------------------------------------------------------


def content_digest(obj: Any, seed: int) -> bytes:
    """A 16-byte digest of everything in `obj` that its pickle carries: type, layout and every byte."""
    digest = xxhash.xxh3_128(seed=seed)
    kind = type(obj)
    if kind is bytes or kind is bytearray:
        digest.update(kind.__name__.encode())
        digest.update(obj)
    elif kind is memoryview:
        digest.update(f"memoryview{obj.format}{obj.shape}{obj.readonly}".encode())
        digest.update(obj.cast("B") if obj.c_contiguous else obj.tobytes())
    elif kind.__name__ == "ndarray":
        _hash_array(digest, obj)
    else:  # pandas: the pickle stream (index, dtypes, object columns) and its out-of-band column buffers
        buffers: list[pickle.PickleBuffer] = []
        digest.update(cloudpickle.dumps(obj, protocol=5, buffer_callback=buffers.append))
        for buffer in buffers:
            digest.update(buffer.raw())
    return digest.digest()


def _hash_array(digest: Any, array: Any) -> None:
    import numpy as np

    # repr of the dtype, not dtype.str: a structured dtype's str ('|V16') omits its field names.
    if array.flags.c_contiguous:
        order, flat = "C", array
    elif array.flags.f_contiguous:
        order, flat = "F", array.T  # the transpose of a Fortran array is C-contiguous: no copy
    else:
        order, flat = "strided", None
    digest.update(f"ndarray{array.dtype!r}{array.shape}{order}".encode())
    if flat is not None:
        digest.update(flat.reshape(-1).view(np.uint8))  # view(uint8): datetime64 has no buffer format
        return
    rows = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    for start in range(0, array.shape[0], rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]).reshape(-1).view(np.uint8))


# --- memoryview: not picklable as such ---------------------------------------------------------------------


def reduce_memoryview(view: memoryview) -> tuple[Callable[..., memoryview], tuple[Any, ...]]:
    """Pickle a memoryview as its bytes, format and shape; it comes back read-only if it was."""
    try:
        memoryview(bytes(view.itemsize)).cast(view.format)  # type: ignore[call-overload]  # any struct format
    except (TypeError, ValueError):
        message = f"a memoryview of format {view.format!r} cannot be sent: pass bytes or an array"
        raise TypeError(message) from None
    data = view.tobytes()
    return memoryview_from, (data if view.readonly else bytearray(data), view.format, view.shape)


def memoryview_from(data: bytes | bytearray, fmt: str, shape: tuple[int, ...]) -> memoryview:
    return memoryview(data).cast(fmt, shape)  # type: ignore[call-overload]  # fmt: any struct format a view had


# --- what each task gets on a node -----------------------------------------------------------------------


def shared_view(obj: Any) -> Any:
    """The object a task gets by default: the node's copy itself where nothing can change it for others."""
    kind = type(obj)
    if kind is bytearray:  # mutable by type, so by a task: each task gets its own
        return bytearray(obj)
    if _is_pandas(kind):
        # Under copy-on-write a shallow copy is isolated: a task's writes copy the column first.
        return obj.copy(deep=not _pandas_copies_on_write())
    return obj  # bytes; read-only arrays and memoryviews


def private_copy(obj: Any) -> Any:
    """A writable copy of the node's object, for one task."""
    kind = type(obj)
    if kind is bytearray:
        return bytearray(obj)
    if kind is memoryview:
        return memoryview(bytearray(obj.cast("B") if obj.c_contiguous else obj.tobytes())).cast(
            obj.format, obj.shape
        )
    if kind.__name__ == "ndarray":
        return obj.copy(order="K")
    if _is_pandas(kind):
        return obj.copy(deep=True)
    return obj  # bytes are never writable


def _pandas_copies_on_write() -> bool:
    import pandas as pd

    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    return pd.options.mode.copy_on_write is True
