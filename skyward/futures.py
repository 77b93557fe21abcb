"""`TaskFuture`: the one future of a pool task, from submission to its outcome.

It is a plain `concurrent.futures.Future` (the currency between layers) with a few public attributes that the
scheduler writes as the task moves. Nothing here reaches into `Future`'s internals: the attributes are single
values written by one thread (the scheduler's, under its lock) and read by any, which needs no lock.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, Protocol


class Owner(Protocol):
    """What runs the task (the pool's scheduler): it knows where the task is."""

    def may_cancel(self, future: TaskFuture) -> bool:
        """Whether the task can still be kept from running (or stopped): then it will not run to its end."""
        ...

    def is_running(self, future: TaskFuture) -> bool:
        """Whether the task is in one of its node's slots now, as far as the client knows."""
        ...


#: Seconds `TaskFuture.cancel` waits for the task's node to say whether it dropped the task.
CANCEL_TIMEOUT = 10.0

# Cancellation is rare: one lock for every future's once-only notification instead of one lock each.
_NOTIFYING = threading.Lock()


class TaskFuture(Future[Any]):
    """The future of a pool task: `cancel()` and `running()` as `concurrent.futures.Future`'s, for a task that
    runs on another machine.

    - *Running* means in one of its node's slots: from when the task is sent to a node with a slot free for it
      until its outcome is back on the client. A task sent ahead into a node's queue (the pool's ``prefetch``)
      is not running until the tasks ahead of it on that node have answered. The client knows what its nodes
      told it, so `running()` lags the node by one message: between a slot freeing there and that reply
      arriving, the next task already runs on the node while `running()` still says False.
    - `cancel()` answers True when the task will not run: it waits on the client, or its node dropped it from
      its queue (or it had not reached the node yet), or it was stopped in a process slot (``executor=
      "process"``). It answers False when the task is running in a thread slot, which cannot be stopped: the
      future then gets its outcome as usual. Cancelling a task that is on a node asks the node (one round
      trip, at most `CANCEL_TIMEOUT` seconds; no answer: False). It stays pending while it runs, which is what
      lets `cancel()` reach the node.

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
        self._owner: Owner | None = None  # set by the scheduler that runs it
        self._task: Any = None  # the scheduler's record of it

    def cancel(self) -> bool:
        """Cancel the task: True when it will not run (or was stopped), False when it runs on (in a thread
        slot) or its outcome is in. See the class docstring."""
        owner = self._owner
        if owner is not None and not self.done() and not owner.may_cancel(self):
            return False
        return self._cancel_now()

    def running(self) -> bool:
        """True while the task is in one of its node's slots (see the class docstring)."""
        owner = self._owner
        return owner is not None and not self.done() and owner.is_running(self)

    def _cancel_now(self) -> bool:
        """Mark the future cancelled without asking the task's node (which already said so, or the pool is
        ending); ``False`` once its outcome is in.

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


__all__ = ["CANCEL_TIMEOUT", "Owner", "TaskFuture"]
