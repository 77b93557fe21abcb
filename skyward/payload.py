"""Tasks as bytes: what a node runs, with large arguments carried as blob digests (see `skyward.blobs`)."""

from __future__ import annotations

import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from skyward import wire
from skyward.blobs import SHARED, BlobIndex, BlobMissing, BlobPolicy, dumps_with_blobs, loads_with_blobs


@dataclass(slots=True)
class TaskPayload:
    """What a node runs: ``fn(*args, **kwargs)``. (Not frozen: one is made per task run.)"""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class EncodedTask:
    """A serialized task and the uploads of the large objects it refers to, by digest.

    `function` names what it calls, for error messages. Not frozen: one is made per task, and a frozen
    dataclass's constructor costs three times as much; nothing changes one once made.
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
        wrapped = fn
        fn, policy = wrapped.fn, wrapped.policy
    # On the wire a task is the plain tuple (fn, args, kwargs): pickling a (slotted) dataclass instance costs
    # about twice as much, on every task (measured with benchmarks/simulate.py).
    call = (fn, args, kwargs)
    if policy is SHARED and (name := _plain_function(fn)) is not None and _plain(args, kwargs):
        try:
            body = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
            return EncodedTask(wire.frame(body), function=name)
        except Exception:  # noqa: BLE001, S110 - e.g. its attribute in its module was rebound: see below
            pass
    name = function_name(fn)
    try:
        if index is None:
            return EncodedTask(wire.dumps(call), function=name)
        payload, blobs = dumps_with_blobs(call, index, policy)
        return EncodedTask(payload, blobs, name)
    except Exception as exc:
        raise TypeError(f"cannot serialize the call to {name}: {type(exc).__name__}: {exc}") from exc


# The fast path of `encode_task`. For a call of a module-level function by reference with arguments of plain
# types (never blobs: see `skyward.blob_kinds`), cloudpickle with the blob pickler writes exactly the bytes the C
# pickler writes: its hooks (`reducer_override`, `persistent_id`) all decline. Asking them costs ~15 us per
# task (cloudpickle looks the function's module up on every call); the C pickler alone, ~2 us.
_PLAIN_TYPES = frozenset({int, float, bool, complex, str, type(None)})
# Functions that cloudpickle pickles by reference, with their names: module-level functions only (lambdas and
# closures, made afresh per call, are never cached). Checked again when the by-value registry changes.
_by_reference: dict[Callable[..., Any], str] = {}
_by_value_modules: set[str] = set()


def _plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    plain = _PLAIN_TYPES
    for arg in args:
        if type(arg) not in plain:
            return False
    if kwargs:
        for value in kwargs.values():
            if type(value) not in plain:
                return False
    return True


def _plain_function(fn: object) -> str | None:
    """`fn`'s name when cloudpickle pickles it as the C pickler does (by reference), else None."""
    global _by_value_modules
    if type(fn) is not types.FunctionType:
        return None
    registry = cloudpickle.list_registry_pickle_by_value()
    if registry != _by_value_modules:  # code shipping (or the user) registered modules to travel by value
        _by_reference.clear()
        _by_value_modules = registry
    name = _by_reference.get(fn)
    if name is not None:
        return name
    qualname, module = fn.__qualname__, fn.__module__
    if "<" in qualname or module == "__main__":  # a lambda, a closure, a script's function: by value
        return None
    try:
        if pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL) != cloudpickle.dumps(
            fn, protocol=pickle.HIGHEST_PROTOCOL
        ):
            return None
    except Exception:  # noqa: BLE001 - unpicklable as it is: cloudpickle decides (and reports)
        return None
    name = _by_reference[fn] = function_name(fn)
    return name


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


def decode_task(frame: bytes, resolve: Callable[[bytes], object] | None = _no_blobs) -> TaskPayload:
    """Inverse of `encode_task`; `resolve` turns a digest into its object (raising `BlobMissing`).

    ``resolve=None``: the task was sent as referring to no blob; it is read by the C unpickler alone (a
    reference to a blob in it then fails to decode, as any malformed task does)."""
    call = pickle.loads(wire.unframe(frame)) if resolve is None else loads_with_blobs(frame, resolve)
    if not (
        type(call) is tuple
        and len(call) == 3
        and callable(call[0])
        and type(call[1]) is tuple
        and type(call[2]) is dict
    ):
        raise wire.WireError(f"expected a task (fn, args, kwargs), got {type(call).__name__}")
    return TaskPayload(*call)
