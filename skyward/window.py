"""`Window`: at most `limit` tasks of one caller in flight on a pool at once, the rest waiting FIFO.

A window is a caller's lane into the pool's scheduler: its tasks wait in the scheduler's own queue (one queue
per task, no second queue on the caller's side) and are admitted as earlier ones finish. Each task has one
future, a `TaskFuture` returned at once, which can be cancelled while the task waits and while it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from skyward.futures import TaskFuture

if TYPE_CHECKING:
    from skyward.pool import ComputePool
    from skyward.scheduler import Scheduler, WindowState

R = TypeVar("R")


class Window:
    """Submits to a pool with at most `limit` tasks in flight (queued for a node or running); the others wait
    their turn, first in first out. Made by `ComputePool.window`.

    Attributes:
        limit: tasks in flight at once; ``None`` sets no bound of its own (the nodes' slots and queues bound
            what runs), for a window used only to cancel together or to stop at the first error.
        prefetch: whether its tasks may wait in a node's queue behind running ones (see the pool's
            ``prefetch``). ``False``: a task is sent only to a node with an idle slot, so it starts when it is
            sent, and ``future.dispatched_at`` is its start: for work timed from its start.
        stop_on_error: the first task that fails (an exception, a crash, its node lost) stops the window: it
            admits nothing more, and its waiting tasks (and later submissions) wait until you `cancel` it; tasks
            already admitted go on. It does not cancel them itself: a future resolved before you have seen the
            failure would show you another outcome first (joblib, which aborts a call at its first error, relies
            on that). Cancelling a task yourself is not a failure.

    Example::

        with sky.ComputePool(nodes=4) as pool:
            window = pool.window(8)  # at most 8 of these at once, whatever else the pool runs
            futures = [window.submit(simulate, seed) for seed in range(1000)]
    """

    __slots__ = ("_pool", "_scheduler", "_state")

    @property
    def label(self) -> str:
        """What this window serves, shown with its progress on the dashboard (unlabelled: not shown)."""
        return self._state.label

    @label.setter
    def label(self, text: str) -> None:
        self._state.label = text

    def __init__(self, pool: ComputePool, scheduler: Scheduler, state: WindowState) -> None:
        self._pool = pool
        self._scheduler = scheduler
        self._state = state

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` once the window has room; returns its future at once.

        Raises as `ComputePool.submit` does (an unserializable call, a closed pool, no node left). A task
        submitted after the window was cancelled is cancelled at once.
        """
        if self._state.cancelled:
            return _cancelled()
        return self._scheduler.submit(self._pool._encode(fn, args, kwargs), window=self._state)

    def cancel(self) -> int:
        """Cancel every task of the window not finished yet, waiting or running (a running task's node is told
        to drop it if it has not started there), and admit nothing more; returns how many were cancelled."""
        return self._scheduler.cancel_window(self._state)

    @property
    def limit(self) -> int | None:
        return self._state.limit

    @property
    def prefetch(self) -> bool:
        return self._state.prefetch

    @property
    def stop_on_error(self) -> bool:
        return self._state.stop_on_error

    @property
    def in_flight(self) -> int:
        """Tasks admitted and not finished: waiting for a node in the pool's queue, or on one."""
        return self._state.in_flight

    @property
    def waiting(self) -> int:
        """Tasks waiting for the window's room."""
        return len(self._state.members) - self._state.in_flight

    @property
    def stopped(self) -> bool:
        """Whether a task failed in a window with ``stop_on_error``: it admits nothing more."""
        return self._state.stopped

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called: the window admits nothing more, and new tasks are cancelled at once."""
        return self._state.cancelled

    def __repr__(self) -> str:
        return f"Window(limit={self.limit}, in_flight={self.in_flight}, waiting={self.waiting})"


def _cancelled() -> TaskFuture:
    future = TaskFuture()
    future.cancel()
    return future
