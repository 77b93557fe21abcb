"""`BatchWindow`: at most `limit` joblib batches of one `Parallel` call running on the pool at once.

joblib hands a backend up to ``pre_dispatch`` batches at a time (``2 * n_jobs`` by default, everything with
``pre_dispatch="all"``). The pool's scheduler would start them on every free slot, so ``n_jobs=3`` on a pool of
eight slots would run eight batches. The window keeps ``n_jobs`` of them on the pool and holds the rest here,
first in first out.

Each batch gets a `BatchFuture` at once: it stays pending until the pool's future ends, so ``future.cancel()``
works while the batch waits here and while it runs (the pool's own future is cancelled, which reaches the node for
a task that has not started there). Completions arrive on the pool's result thread, never on the I/O loop; the
window frees the slot (starting the next waiting batch) before it resolves the batch's future, whose callbacks
(joblib's, which pickle and dispatch the next batch) then run on that same thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol


class SubmitsTasks(Protocol):
    """What the window needs of a pool (``ComputePool.submit`` and ``submit_timed``)."""

    def submit(self, fn: Callable[..., Any], /) -> Future[Any]: ...

    def submit_timed(self, fn: Callable[..., Any], /) -> Future[Any]: ...


class BatchFuture(Future[Any]):
    """The future joblib holds for one batch.

    Attributes:
        run_seconds: seconds from handing the batch to the pool until its outcome came back (the time it waited
            in the window is not counted); ``None`` until then, or when it never reached the pool.
    """

    def __init__(self) -> None:
        super().__init__()
        self.run_seconds: float | None = None


@dataclass(eq=False)
class _Batch:
    fn: Callable[[], Any]
    future: BatchFuture
    remote: Future[Any] | None = None
    sent_at: float = field(default=0.0)
    on_dispatch: Callable[[], object] | None = None


class BatchWindow:
    """Runs callables on a pool with at most `limit` of them in flight; the others wait in FIFO order.

    After the first batch that fails (or is cancelled) the window stops starting waiting batches: joblib aborts
    the whole call on the first error, and a batch started in between would only occupy a slot.
    """

    def __init__(self, pool: SubmitsTasks, limit: int, *, timed: bool = False) -> None:
        """`timed`: batches are timed from dispatch (joblib's ``timeout``), so they go only to idle slots."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.timed = timed
        self._pool = pool
        self._send = pool.submit_timed if timed else pool.submit
        self._lock = threading.Lock()
        self._in_flight = 0  # slots of the window taken: batches on the pool, or being handed to it
        self._waiting: deque[_Batch] = deque()
        self._running: set[_Batch] = set()
        self._halted = False

    # --- submission ----------------------------------------------------------------------------------------

    def submit(self, fn: Callable[[], Any], on_dispatch: Callable[[], object] | None = None) -> BatchFuture:
        """Run `fn` on the pool once the window has room; never raises (a failure resolves the future).

        `on_dispatch` is called each time the pool sends the batch to a node.
        """
        batch = _Batch(fn, BatchFuture(), on_dispatch=on_dispatch)
        batch.future.add_done_callback(lambda _, batch=batch: self._on_batch_future_done(batch))
        with self._lock:
            if self._halted or self._in_flight >= self.limit:
                self._waiting.append(batch)
                return batch.future
            self._in_flight += 1
        self._launch_from(batch)
        return batch.future

    def renewed(self) -> BatchWindow:
        """An empty window on the same pool with the same limit."""
        return BatchWindow(self._pool, self.limit, timed=self.timed)

    def _launch_from(self, batch: _Batch | None) -> None:
        """Hand `batch` (whose window slot is already taken) to the pool; a batch that does not get there
        passes its slot on to the next waiting one."""
        while batch is not None:
            if self._launch(batch):
                return
            batch = self._take_next_or_release()

    def _launch(self, batch: _Batch) -> bool:
        """True when `batch` now runs on the pool; False when it was cancelled or could not be sent."""
        if batch.future.done():  # cancelled while it waited
            return False
        batch.sent_at = time.perf_counter()
        try:
            remote = self._send(batch.fn)
        except Exception as exc:  # noqa: BLE001 - e.g. unpicklable arguments: the batch fails, not its sender
            self._halt()
            _settle(batch.future, exc)
            return False
        if batch.on_dispatch is not None and hasattr(remote, "add_dispatch_callback"):
            remote.add_dispatch_callback(batch.on_dispatch)
        with self._lock:
            batch.remote = remote
            self._running.add(batch)
        if batch.future.cancelled():  # cancelled while it was being sent: nobody else will cancel `remote`
            remote.cancel()
        remote.add_done_callback(lambda _, batch=batch: self._on_remote_done(batch))
        return True

    def _take_next_or_release(self) -> _Batch | None:
        """A freed window slot goes to the next waiting batch, or back to the window."""
        with self._lock:
            while self._waiting and not self._halted:
                candidate = self._waiting.popleft()
                if not candidate.future.done():
                    return candidate
            self._in_flight -= 1
            return None

    def _halt(self) -> None:
        with self._lock:
            self._halted = True

    # --- completion (on the pool's result thread) ----------------------------------------------------------

    def _on_remote_done(self, batch: _Batch) -> None:
        remote = batch.remote
        assert remote is not None
        batch.future.run_seconds = time.perf_counter() - batch.sent_at
        if remote.cancelled() or remote.exception() is not None:
            self._halt()
        with self._lock:
            self._running.discard(batch)
        # Free the slot first, so the pool gets the next waiting batch before joblib's callback runs.
        self._launch_from(self._take_next_or_release())
        if remote.cancelled():
            batch.future.cancel()
        else:
            exc = remote.exception()
            _settle(batch.future, exc if exc is not None else _Value(remote.result()))

    def _on_batch_future_done(self, batch: _Batch) -> None:
        # `batch.future.cancel()` from joblib or from `cancel_all`: take it off the pool too.
        if batch.future.cancelled() and batch.remote is not None:
            batch.remote.cancel()

    # --- cancellation --------------------------------------------------------------------------------------

    def cancel_all(self) -> int:
        """Cancel every waiting and running batch and start nothing more; returns how many were cancelled.

        A running batch's pool future is cancelled, which tells its node to drop the task when it has not started
        there; one that already runs finishes on its node, and its result is dropped.
        """
        with self._lock:
            self._halted = True
            batches = [*self._waiting, *self._running]
            self._waiting.clear()
        return sum(batch.future.cancel() for batch in batches)


@dataclass(frozen=True, slots=True)
class _Value:
    value: Any


def _settle(future: Future[Any], outcome: BaseException | _Value) -> None:
    """Resolve `future` unless it is already done (e.g. cancelled by joblib meanwhile)."""
    try:
        if isinstance(outcome, _Value):
            future.set_result(outcome.value)
        else:
            future.set_exception(outcome)
    except InvalidStateError:
        pass


__all__ = ["BatchFuture", "BatchWindow", "SubmitsTasks"]
