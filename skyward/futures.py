"""`TaskFuture`: the one future of a pool task, from submission to its outcome.

It is a plain `concurrent.futures.Future` (the currency between layers) with a few public attributes that the
scheduler writes as the task moves. Nothing here reaches into `Future`'s internals: the attributes are single
values written by one thread (the scheduler's, under its lock) and read by any, which needs no lock.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

# Cancellation is rare: one lock for every future's once-only notification instead of one lock each.
_NOTIFYING = threading.Lock()


class TaskFuture(Future[Any]):
    """The future of a pool task; it stays pending while the task runs remotely, so `cancel()` works until the
    outcome is in (and reaches the node).

    Attributes:
        dispatches: how many times the task was sent to a node (more than once after a steal or a retry).
        dispatched_at: `time.monotonic()` when it was last sent to a node; ``None`` while it waits on the client.
            Work timed from its start reads it (see `ComputePool.window`'s ``prefetch=False``, where a task
            starts when it is sent).
        run_seconds: seconds from its last dispatch until its outcome came back to the client; ``None`` until
            then, or when it never reached a node.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dispatches = 0
        self.dispatched_at: float | None = None
        self.run_seconds: float | None = None
        self._notified = False

    def cancel(self) -> bool:
        """Cancel the task (see `ComputePool.submit`); ``False`` once its outcome is in.

        A cancelled future is also *notified* at once, as an executor does when it picks a cancelled future up:
        `concurrent.futures.wait` and `as_completed` count only notified cancellations as done, and no worker
        thread here would ever pick this one up to notify it.
        """
        if not super().cancel():
            return False
        with _NOTIFYING:  # cancelled twice (the user, then the pool's teardown): notify once
            first, self._notified = not self._notified, True
        if first:
            self.set_running_or_notify_cancel()
        return True

    def seconds_since_dispatch(self) -> float:
        """Seconds since the task was last sent to a node; 0.0 while it has not been."""
        sent = self.dispatched_at
        return 0.0 if sent is None else time.monotonic() - sent

    def _dispatched(self, now: float) -> None:
        """The scheduler sent the task to a node at `now` (`time.monotonic()`)."""
        self.dispatches += 1
        self.dispatched_at = now

    def _returned(self, now: float) -> None:
        """The task's outcome came back at `now`."""
        if self.dispatched_at is not None:
            self.run_seconds = now - self.dispatched_at


__all__ = ["TaskFuture"]
