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
    """A serialized task and the uploads of the large objects it refers to, by digest."""

    payload: bytes
    blobs: dict[bytes, bytes] = field(default_factory=dict)


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
    try:
        if index is None:
            return EncodedTask(wire.dumps(TaskPayload(fn, args, kwargs)))
        payload, blobs = dumps_with_blobs(TaskPayload(fn, args, kwargs), index, policy)
        return EncodedTask(payload, blobs)
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(f"cannot serialize the call to {name}: {type(exc).__name__}: {exc}") from exc


def _no_blobs(digest: bytes) -> object:
    raise BlobMissing(digest)


def decode_task(frame: bytes, resolve: Callable[[bytes], object] = _no_blobs) -> TaskPayload:
    """Inverse of `encode_task`; `resolve` turns a digest into its object (raising `BlobMissing`)."""
    payload = loads_with_blobs(frame, resolve)
    if not isinstance(payload, TaskPayload):
        raise wire.WireError(f"expected a TaskPayload, got {type(payload).__name__}")
    return payload
