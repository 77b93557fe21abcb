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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, wait
from typing import TYPE_CHECKING, Any, Self

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

    # Provided by ComputePool.
    __enter__: Callable[[], Self]
    __exit__: Callable[..., None]
    submit: Callable[..., TaskFuture]  # type: ignore[assignment]
    cancel_all: Callable[[], int]

    def _unfinished(self) -> list[TaskFuture]:
        raise NotImplementedError

    # --- concurrent.futures.Executor -------------------------------------------------------------------------

    def map(  # type: ignore[override]
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """``fn`` over the iterables' items, in parallel on the pool; results in order, as an iterator.

        As `concurrent.futures.Executor.map`: every call is submitted at once, `timeout` bounds the wait for
        each result from this call, and the first failure is raised when its result is reached. ``chunksize``
        sends that many calls per task (fewer messages for many tiny calls).
        """
        if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        chunked = super().map(
            functools.partial(apply_chunk, fn), _chunks(zip(*iterables), chunksize), timeout=timeout
        )
        return itertools.chain.from_iterable(chunked)

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

    def _enter_context(self) -> None:
        """Make this pool the current one in the caller's context (``f(x) >> sky`` inside ``async with``)."""
        raise NotImplementedError

    def _leave_context(self) -> None:
        raise NotImplementedError

    async def submit_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``await pool.submit_async(fn, *args)``: run the call on the pool and await its result without
        blocking the event loop. Cancelling the awaiting task cancels the call."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))


def _wait_all(futures: list[TaskFuture]) -> None:
    if futures:
        wait(futures)
