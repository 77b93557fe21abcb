"""The client's I/O event loop, in a daemon thread shared by every pool of the process.

Only bytes move on this loop. Unpickling results and running user callbacks happen elsewhere (see
`skyward.scheduler`), so a slow callback never stalls the transport.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="skyward-io", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Call `fn(*args)` on the loop: at once when already there, else soon."""
        if self.on_loop():
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread


_shared: EventLoopThread | None = None
_lock = threading.Lock()


def shared_loop() -> EventLoopThread:
    global _shared
    with _lock:
        if _shared is None:
            _shared = EventLoopThread()
        return _shared
