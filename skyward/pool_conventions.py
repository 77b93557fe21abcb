"""The Python conventions a `ComputePool` follows besides ``with``: `concurrent.futures.Executor`, a notebook's
``start()`` / ``close()``, and asyncio's ``async with`` and awaitable submission.

A mixin, so that `skyward.pool` keeps the pool's own lifecycle and this module only maps the conventions onto it
(`__enter__`, `__exit__`, `submit`, `cancel_all` and the scheduler's unfinished futures).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, wait
from typing import TYPE_CHECKING, Any, Self

from skyward.progress_display import CallProgress, call_progress

if TYPE_CHECKING:
    from skyward.futures import TaskFuture


def apply_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
    """Run `fn` over one chunk of `map`'s argument tuples, on a node (imported there by reference)."""
    return [fn(*args) for args in chunk]


def _chunks(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class PoolConventions(Executor):
    """`concurrent.futures.Executor`, notebook and asyncio entry points over the pool's own lifecycle."""

    # What ComputePool provides: its own lifecycle and scheduler, which the conventions below are written over.
    __enter__: Callable[[], Self]
    __exit__: Callable[..., None]
    submit: Callable[..., TaskFuture]  # type: ignore[assignment]
    cancel_all: Callable[[], int]
    _unfinished: Callable[[], list[TaskFuture]]  # the futures of every task waiting or in flight
    _enter_context: Callable[[], None]  # make it the current pool of the caller's context (``>> sky``)
    _leave_context: Callable[[], None]

    # --- concurrent.futures.Executor -------------------------------------------------------------------------

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        progress: bool | None = None,
    ) -> Iterator[Any]:
        """``fn`` over the iterables' items, in parallel on the pool; results in order, as an iterator.

        As `concurrent.futures.Executor.map`: every call is submitted at once, `timeout` bounds the wait for
        each result from this call, and the first failure is raised when its result is reached (the calls not
        finished then are cancelled, as when the iterator is dropped early). ``chunksize`` sends that many calls
        per task (fewer messages for many tiny calls). ``progress``: ``True`` shows how many tasks are done (a
        bar in a terminal, a line per tenth elsewhere, on stderr); ``None`` shows a bar only in a terminal once
        the call has run a second, and nothing when the provider is ``quiet``; ``False`` never.
        """
        if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
        end = None if timeout is None else time.monotonic() + timeout
        if chunksize == 1:
            futures = [self.submit(fn, *args) for args in zip(*iterables)]
        else:
            task = functools.partial(apply_chunk, fn)
            futures = [self.submit(task, chunk) for chunk in _chunks(zip(*iterables), chunksize)]
        shown = call_progress(len(futures), f"pool.map of {len(futures)} tasks", progress, quiet=self.quiet)
        if shown is not None:
            shown.__enter__()
            shown.watch(futures)
        results = _in_order(futures, end, shown)
        return itertools.chain.from_iterable(results) if chunksize > 1 else results

    @property
    def quiet(self) -> bool:
        """Whether the pool's provider was asked to show no progress (``quiet=True``)."""
        return bool(getattr(getattr(self, "provider", None), "quiet", False))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the pool, as leaving its ``with`` block does, after its tasks finish.

        Args:
            wait: wait for every unfinished task to end before ending the pool; ``False`` returns at once and
                ends the pool in the background once they have.
            cancel_futures: cancel every unfinished task first (`cancel_all`: unlike the standard library, the
                futures of running tasks are cancelled too; a process slot stops its task, a thread slot runs it
                to its end and its result is dropped).
        """
        if cancel_futures:
            self.cancel_all()
        unfinished = self._unfinished()
        if wait:
            _wait_all(unfinished)
            self.close()
            return
        threading.Thread(target=self._close_after, args=(unfinished,), name="skyward-shutdown").start()

    def _close_after(self, unfinished: list[TaskFuture]) -> None:
        _wait_all(unfinished)
        self.close()

    # --- notebooks -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the pool outside a ``with`` block (a notebook cell): ``pool = sky.ComputePool(...).start()``.

        End it with `close` (or `shutdown`); if the program ends first, it is closed at exit, as a ``with``
        block would. Starting a pool that is already started raises `skyward.SkywardError`.
        """
        self.__enter__()
        atexit.register(self.close)
        return self

    def close(self) -> None:
        """End the pool now, as leaving its ``with`` block does: unfinished tasks are cancelled, nodes stopped.
        Closing a pool that is not started does nothing."""
        atexit.unregister(self.close)
        self.__exit__(None, None, None)

    # --- asyncio ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """``async with sky.ComputePool(...) as pool``: nodes start in a worker thread, so the running event loop
        goes on meanwhile."""
        await asyncio.to_thread(self.__enter__)
        self._enter_context()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await asyncio.to_thread(self.__exit__, *exc_info)
        finally:
            self._leave_context()

    async def submit_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await pool.submit_async(fn, *args)``: run the call on the pool and await its result without
        blocking the event loop. Cancelling the awaiting task cancels the call."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))


def _in_order(futures: list[TaskFuture], end: float | None, shown: CallProgress | None) -> Iterator[Any]:
    """`map`'s results, in order; whatever is not finished when it stops (an error, a timeout, dropped early)
    is cancelled at once, no node asked (its result would be dropped anyway)."""
    try:
        for index, future in enumerate(futures):
            yield future.result() if end is None else future.result(max(0.0, end - time.monotonic()))
            futures[index] = None  # type: ignore[call-overload]  # let its result go
    finally:
        for future in futures:
            if future is not None:
                future._cancel_now()
        if shown is not None:
            shown.close()


def _wait_all(futures: list[TaskFuture]) -> None:
    if futures:
        wait(futures)
