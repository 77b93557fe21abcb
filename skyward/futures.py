"""`TaskFuture`: the one future of a pool task, from submission to its outcome; `LightFuture`, its base.

A `TaskFuture` is a `concurrent.futures.Future` (the currency between layers) with a few public attributes that
the scheduler writes as the task moves: single values written by one thread (the scheduler's, under its lock)
and read by any, which needs no lock.

`LightFuture` is `Future` at a fraction of its cost, for the futures made once per task (the client's, and the
node's slots'): at thousands of tasks a second, `Future()`'s `threading.Condition` (an RLock, five bound
methods and a deque: seven objects for the garbage collector, which traverses each of them again and again
while the task is out) and its locked reads were a large share of the work per task. It keeps `Future`'s internals (`_condition`, `_state`, ...) because `concurrent.futures.wait`,
`as_completed` and asyncio's `wrap_future` use them; tests/test_task_future.py checks it against them.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import _base as _futures
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# Cancellation is rare: one lock for every future's once-only notification instead of one lock each.
_NOTIFYING = threading.Lock()
_CANCELLED = frozenset({_futures.CANCELLED, _futures.CANCELLED_AND_NOTIFIED})
_DONE = _CANCELLED | {_futures.FINISHED}
_FINISHED = _futures.FINISHED


# The lock of every `LightFuture`'s condition. A future holds its lock only to read or change its own state (never
# while calling out, never while waiting: `Condition.wait` releases it), so one lock for all costs no
# parallelism (the interpreter lock serializes those moments anyway) and saves an object per future. Reentrant:
# `concurrent.futures.wait` takes the lock of every future it waits on at once.
_LOCK = _thread.RLock()


class _Condition(threading.Condition):
    """`threading.Condition` over the shared `_LOCK`, built for one future: its lock's methods are the class's
    (not five bound methods made per instance) and its deque of waiting threads is made by the first thread that
    waits (most futures are never waited on: their outcome is read once it is in)."""

    _waiters: Any = ()  # a deque once a thread waits (always under the lock)
    _lock = _LOCK

    def __init__(self) -> None:  # no call of Condition.__init__: that is the cost saved
        pass

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def _release_save(self) -> Any:
        return self._lock._release_save()  # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined,no-any-return]

    def _at_fork_reinit(self) -> None:
        self._waiters = ()

    def notify_all(self) -> None:
        if self._waiters:  # nobody waits on most futures: no more to do
            super().notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        if type(self._waiters) is tuple:
            self._waiters = deque()
        return super().wait(timeout)


class LightFuture(Future[T]):
    """A `concurrent.futures.Future` that costs less to make and to read (see the module docstring).

    Same behaviour: `done`, `cancelled`, and `result`/`exception` of a finished future read its state without
    the lock (a future leaves a done state never, and its outcome is written before its state), which is what
    the lock gave them; `set_result`/`set_exception` are `Future`'s, without making the list of
    `concurrent.futures.wait` waiters when there is none; everything else is `Future`'s own code.
    """

    _waiter_list: list[Any] | None = None  # made when `concurrent.futures.wait` or `as_completed` first asks

    def __init__(self) -> None:  # Future.__init__'s fields, with the light condition and no waiter list yet
        self._condition = _Condition()
        self._state = _futures.PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._done_callbacks: list[Any] = []

    @property
    def _waiters(self) -> list[Any]:
        """`Future`'s list of `concurrent.futures.wait`/`as_completed` waiters (they add and remove theirs under
        the lock), made on first use: most futures never have one."""
        waiters = self._waiter_list
        if waiters is None:
            waiters = self._waiter_list = []
        return waiters

    @_waiters.setter
    def _waiters(self, waiters: list[Any]) -> None:
        self._waiter_list = waiters

    def set_result(self, result: T) -> None:
        # Future.set_result, reading the waiter list without making it.
        with self._condition:
            if self._state in _DONE:
                raise _futures.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = _FINISHED
            for waiter in self._waiter_list or ():
                waiter.add_result(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def set_exception(self, exception: BaseException | None) -> None:
        # Future.set_exception, reading the waiter list without making it.
        with self._condition:
            if self._state in _DONE:
                raise _futures.InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = _FINISHED
            for waiter in self._waiter_list or ():
                waiter.add_exception(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def done(self) -> bool:
        return self._state in _DONE

    def cancelled(self) -> bool:
        return self._state in _CANCELLED

    def result(self, timeout: float | None = None) -> T:
        if self._state == _FINISHED and self._exception is None:
            return self._result  # type: ignore[no-any-return]
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == _FINISHED:
            return self._exception
        return super().exception(timeout)


class Owner(Protocol):
    """What runs the task (the pool's scheduler): it knows where the task is, and hears of its cancellation."""

    def may_cancel(self, future: TaskFuture) -> bool:
        """Whether the task can still be kept from running (or stopped): then it will not run to its end."""
        ...

    def is_running(self, future: TaskFuture) -> bool:
        """Whether the task is in one of its node's slots now, as far as the client knows."""
        ...

    def future_cancelled(self, task: Any) -> None:
        """`task`'s future was cancelled: in the cancelling thread, before the future's done callbacks run."""
        ...


#: Seconds `TaskFuture.cancel` waits for the task's node to say whether it dropped the task.
CANCEL_TIMEOUT = 10.0


class TaskFuture(LightFuture[Any]):
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

    # Defaults on the class (one is made per task): an instance gets its own value when one is written.
    dispatches: int = 0
    dispatched_at: float | None = None
    run_seconds: float | None = None
    _notified: bool = False
    _owner: Owner | None = None  # the scheduler that runs it, until its outcome is in (`_watch_cancel`)
    _task: Any = None  # the scheduler's record of it, as long as `_owner`

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

    def _watch_cancel(self, owner: Owner, task: Any) -> None:
        """`owner` runs this future's `task`: it answers `cancel()`'s and `running()`'s questions until the
        outcome is in, and hears of a cancellation (`owner.future_cancelled(task)`) before the done callbacks
        run, as a first done callback would, without one: no callable made, no lock taken per task."""
        self._owner, self._task = owner, task

    def _invoke_callbacks(self) -> None:
        # Future calls this once its state is final (a result, an exception, or cancelled).
        owner = self._owner
        if owner is not None:
            task = self._task
            self._owner = self._task = None  # the task and its future no longer refer to each other
            if self._state in _CANCELLED:
                try:
                    owner.future_cancelled(task)
                except Exception:  # noqa: BLE001 - as Future treats a failing done callback
                    _futures.LOGGER.exception("exception telling %r of the cancellation of %r", owner, self)
        super()._invoke_callbacks()  # type: ignore[misc]  # Future has it; typeshed does not list it

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


__all__ = ["CANCEL_TIMEOUT", "LightFuture", "Owner", "TaskFuture"]
