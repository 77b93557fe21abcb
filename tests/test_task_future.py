"""`TaskFuture` and `LightFuture`: `concurrent.futures.Future`s (cheaper to make) with public dispatch and run times."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, CancelledError, Future, as_completed, wait
from concurrent.futures import TimeoutError as FuturesTimeout

import pytest

from skyward.futures import LightFuture, TaskFuture


def test_it_is_a_future_that_cancels_while_pending() -> None:
    future = TaskFuture()
    assert isinstance(future, Future)
    assert future.cancel() and future.cancelled()
    other = TaskFuture()
    other.set_result(7)
    assert wait([other], timeout=1).done == {other} and other.result() == 7


def test_dispatch_and_run_times() -> None:
    future = TaskFuture()
    assert (future.dispatches, future.dispatched_at, future.run_seconds) == (0, None, None)
    assert future.seconds_since_dispatch() == 0.0  # not sent yet: its clock has not started
    sent = time.monotonic()
    future._dispatched(sent)
    future._dispatched(sent + 1.0)  # sent again (a steal, a retry): the clock restarts
    assert future.dispatches == 2 and future.dispatched_at == sent + 1.0
    future._returned(sent + 1.5)
    assert future.run_seconds == 0.5  # from its last dispatch
    late = TaskFuture()
    late._dispatched(time.monotonic() - 2.0)
    assert 2.0 <= late.seconds_since_dispatch() < 10


@pytest.mark.parametrize("kind", [Future, LightFuture, TaskFuture])
def test_light_futures_behave_as_futures_across_threads(kind: type[Future[object]]) -> None:
    """`LightFuture` keeps `Future`'s internals: `wait`, `as_completed`, blocking `result` and asyncio's
    `wrap_future` work on it, from other threads, as on a plain `Future`."""
    waiting = [kind() for _ in range(3)]
    threading.Timer(0.05, waiting[1].set_result, (1,)).start()
    done, pending = wait(waiting, timeout=5, return_when=FIRST_COMPLETED)
    assert done == {waiting[1]} and len(pending) == 2
    for index, future in enumerate(waiting):
        if index != 1:
            threading.Timer(0.02 * index, future.set_result, (index,)).start()
    assert sorted(f.result() for f in as_completed(waiting, timeout=5)) == [0, 1, 2]
    # Two threads blocked in result() at once both wake when it is set.
    shared, got = kind(), []
    readers = [threading.Thread(target=lambda: got.append(shared.result(timeout=5))) for _ in range(2)]
    for reader in readers:
        reader.start()
    time.sleep(0.05)
    shared.set_result("x")
    for reader in readers:
        reader.join(5)
    assert got == ["x", "x"]
    with pytest.raises(FuturesTimeout):
        kind().result(timeout=0.01)
    raising = [kind(), kind()]
    threading.Timer(0.05, raising[0].set_exception, (KeyError("k"),)).start()
    done, _ = wait(raising, timeout=5, return_when=FIRST_EXCEPTION)
    assert done == {raising[0]}
    failed = kind()
    failed.set_exception(ValueError("boom"))
    assert isinstance(failed.exception(), ValueError) and failed.done() and not failed.cancelled()
    with pytest.raises(ValueError, match="boom"):
        failed.result()
    cancelled = kind()
    assert cancelled.cancel() and cancelled.cancelled() and cancelled.done()
    with pytest.raises(CancelledError):
        cancelled.result()

    async def wrapped() -> object:
        future = kind()
        asyncio.get_running_loop().call_later(
            0.01, lambda: threading.Thread(target=future.set_result, args=("async",)).start()
        )
        return await asyncio.wrap_future(future)

    assert asyncio.run(wrapped()) == "async"


def test_callbacks_run_in_order_and_at_once_when_done() -> None:
    seen: list[str] = []
    future = LightFuture[int]()
    future.add_done_callback(lambda f: seen.append(f"a{f.result()}"))
    future.add_done_callback(lambda f: seen.append(f"b{f.result()}"))
    future.set_result(1)
    future.add_done_callback(lambda f: seen.append("late"))
    assert seen == ["a1", "b1", "late"]


class _Watcher:
    """An owner (`skyward.futures.Owner`) whose tasks can always be kept from running."""

    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    def may_cancel(self, future: TaskFuture) -> bool:
        return True

    def is_running(self, future: TaskFuture) -> bool:
        return False

    def future_cancelled(self, key: object) -> None:
        self.seen.append(("watcher", key))


def test_a_watched_future_tells_its_watcher_of_a_cancellation_first_and_once() -> None:
    seen: list[object] = []
    future = TaskFuture()
    future._watch_cancel(_Watcher(seen), "task-1")
    future.add_done_callback(lambda f: seen.append(("callback", f.cancelled())))
    assert future.cancel() and future.cancel()  # twice: told once
    assert seen == [("watcher", "task-1"), ("callback", True)]
    assert wait([future], timeout=1).done == {future}  # notified: wait() counts it done
    finished: list[object] = []
    other = TaskFuture()
    other._watch_cancel(_Watcher(finished), "task-2")
    other.set_result(3)
    assert finished == [] and not other.cancel()
    # Once its outcome is in, the future no longer refers to its watcher (nor the task it watches for).
    assert gc.get_referents(other).count("task-2") == 0
    assert not any(isinstance(r, _Watcher) for r in gc.get_referents(other))


def test_a_failing_watcher_does_not_keep_the_callbacks_from_running() -> None:
    class Broken(_Watcher):
        def future_cancelled(self, key: object) -> None:
            raise RuntimeError("watcher broke")

    seen: list[bool] = []
    future = TaskFuture()
    future._watch_cancel(Broken([]), "k")
    future.add_done_callback(lambda f: seen.append(f.cancelled()))
    assert future.cancel() and seen == [True]
