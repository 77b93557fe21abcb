"""Tasks as bytes: what a node runs, with large arguments carried as blob digests (see `skyward.blobs`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skyward import wire
from skyward.blobs import SHARED, BlobIndex, BlobMissing, BlobPolicy, dumps_with_blobs, loads_with_blobs


@dataclass(frozen=True, slots=True)
class TaskPayload:
    """What a node runs: ``fn(*args, **kwargs)``."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedTask:
    """A serialized task and the uploads of the large objects it refers to, by digest.

    `function` names what it calls, for error messages.
    """

    payload: bytes
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    function: str = "a task"


@dataclass(frozen=True, slots=True)
class WithBlobPolicy:
    """A callable to submit whose large arguments are encoded under `policy`.

    ``pool.submit(WithBlobPolicy(batch, policy))`` runs ``batch()``; the wrapper itself does not travel.
    The joblib backend wraps its batches this way to honour ``max_nbytes`` and ``mmap_mode``.
    """

    fn: Callable[..., Any]
    policy: BlobPolicy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def encode_task(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], index: BlobIndex | None = None
) -> EncodedTask:
    """Serialize a call. Raises `TypeError` naming the function when something in it cannot be pickled."""
    policy = SHARED
    if isinstance(fn, WithBlobPolicy):
        fn, policy = fn.fn, fn.policy
    name = function_name(fn)
    # On the wire a task is the plain tuple (fn, args, kwargs): pickling a (slotted) dataclass instance costs
    # about twice as much, on every task (measured with benchmarks/simulate.py).
    call = (fn, args, kwargs)
    try:
        if index is None:
            return EncodedTask(wire.dumps(call), function=name)
        payload, blobs = dumps_with_blobs(call, index, policy)
        return EncodedTask(payload, blobs, name)
    except Exception as exc:
        raise TypeError(f"cannot serialize the call to {name}: {type(exc).__name__}: {exc}") from exc


def function_name(fn: object) -> str:
    """A readable name of what a task calls: ``module.qualname``; a joblib batch by what it batches."""
    items = getattr(fn, "items", None)  # joblib's BatchedCalls: [(function, args, kwargs), ...]
    if isinstance(items, list) and items and isinstance(items[0], tuple) and items[0]:
        return f"a joblib batch of {len(items)} call(s) of {function_name(items[0][0])}"
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and not hasattr(fn, "__qualname__"):
        return function_name(inner)
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)[:80]
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module and module != "builtins" else str(qualname)


def _no_blobs(digest: bytes) -> object:
    raise BlobMissing(digest)


def decode_task(frame: bytes, resolve: Callable[[bytes], object] = _no_blobs) -> TaskPayload:
    """Inverse of `encode_task`; `resolve` turns a digest into its object (raising `BlobMissing`)."""
    call = loads_with_blobs(frame, resolve)
    if not (
        type(call) is tuple
        and len(call) == 3
        and callable(call[0])
        and type(call[1]) is tuple
        and type(call[2]) is dict
    ):
        raise wire.WireError(f"expected a task (fn, args, kwargs), got {type(call).__name__}")
    return TaskPayload(*call)
