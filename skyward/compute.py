"""`@sky.compute`: functions whose calls are sent to a pool with an operator.

    @sky.compute
    def square(x): return x * x

    square(3) >> pool                   # run it, wait, return 9
    future = square(3) > pool           # a concurrent.futures.Future
    square(3) @ pool                    # once on every node: [9, 9, ...] in node order
    sky.gather(square(1), square(2)) >> pool   # (1, 4)

Inside a ``with`` block the pool can stay implicit: ``square(3) >> sky``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from skyward.pool import ComputePool, current_pool


def _target(target: object) -> ComputePool:
    if isinstance(target, ComputePool):
        return target
    if target is None or isinstance(target, types.ModuleType):  # `>> sky`: the active pool
        return current_pool()
    raise TypeError(f"a pending call is sent to a ComputePool (or `sky` inside a pool block), not {target!r}")


@dataclass(frozen=True)
class PendingCall[R]:
    """A call of a `@sky.compute` function, not yet run anywhere."""

    fn: Callable[..., R]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def __rshift__(self, target: object) -> R:
        """``call >> pool``: run on a free slot and return the result (raises the remote exception)."""
        return (self > target).result()

    def __gt__(self, target: object) -> Future[R]:  # type: ignore[override]
        """``call > pool``: run on a free slot; return a `concurrent.futures.Future`."""
        return _target(target).submit(self.fn, *self.args, **self.kwargs)

    def __matmul__(self, target: object) -> list[R]:
        """``call @ pool``: run once on every node; results in node order."""
        return _target(target).broadcast(self.fn, *self.args, **self.kwargs)

    def local(self) -> R:
        """Run the call here, in this process."""
        return self.fn(*self.args, **self.kwargs)


@dataclass(frozen=True)
class PendingGroup:
    """Several pending calls sent together with `sky.gather`."""

    calls: tuple[PendingCall[Any], ...]
    progress: bool = False

    def __rshift__(self, target: object) -> tuple[Any, ...]:
        """Run every call in parallel; results in the order of the calls (the first error is raised)."""
        futures = self > target
        if self.progress:
            from skyward.progress_display import CallProgress

            with CallProgress(len(futures), f"sky.gather of {len(futures)} calls") as shown:
                for _ in shown.track(futures):
                    pass
        return tuple(future.result() for future in futures)

    def __gt__(self, target: object) -> list[Future[Any]]:  # type: ignore[override]
        pool = _target(target)
        return [pool.submit(call.fn, *call.args, **call.kwargs) for call in self.calls]


def gather(*calls: PendingCall[Any], progress: bool = False) -> PendingGroup:
    """Group pending calls to run in parallel: ``sky.gather(a(1), b(2)) >> pool`` returns ``(ra, rb)``.

    With ``progress=True``, ``>>`` shows how many have finished while it waits: a progress bar in a terminal, a
    line per tenth of the calls otherwise (on stderr).
    """
    for call in calls:
        if not isinstance(call, PendingCall):
            raise TypeError(f"sky.gather takes calls of @sky.compute functions, got {type(call).__name__}")
    return PendingGroup(tuple(calls), progress)


def compute[**P, R](fn: Callable[P, R]) -> Callable[P, PendingCall[R]]:
    """Make calls of `fn` pending: they run where you send them (``>>``, ``>``, ``@``).

    The undecorated function stays reachable as ``.local``.
    """

    @functools.wraps(fn)
    def pending(*args: P.args, **kwargs: P.kwargs) -> PendingCall[R]:
        return PendingCall(fn, args, kwargs)

    pending.local = fn  # type: ignore[attr-defined]
    return pending
