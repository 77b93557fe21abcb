"""Where in-process nodes live: one event loop on a thread of its own, and the mailboxes between loops.

A real agent runs its `TaskRunner` on its own event loop, in its own process; in-process nodes run theirs on
the host's loop, all of them on one thread (so that a thousand simulated nodes cost one thread, and their CPU
time can be read apart from the client's: `cpu_seconds`). Messages cross between the client's loop and the
host's through `Mailbox`es, many per wake-up, as frames share a connection's writes in casty.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any


class DelayLine:
    """Calls run at given times on `loop`, in the order they were added: one timer for all of them.

    For delays that are the same for every call (a link's latency, a virtual slot's hold time), the times come
    in order, so a queue replaces asyncio's timer heap: with 10,000 tasks held at once, every heap operation
    would cost a dozen Python-level comparisons. A call added out of order runs right after the one added
    before it (late by the disorder, never early). Use it on `loop`'s thread only.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: deque[tuple[float, Callable[..., object], tuple[Any, ...]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def shared(cls, loop: asyncio.AbstractEventLoop, key: object) -> DelayLine:
        """The line of `loop` for `key` (e.g. a hold time), made on first use."""
        lines = _LINES.setdefault(loop, {})
        line = lines.get(key)
        if line is None:
            line = lines[key] = cls(loop)
        return line

    def add_at(self, when: float, fn: Callable[..., object], *args: Any) -> None:
        self._due.append((when, fn, args))
        if self._timer is None:
            self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        due, now = self._due, self.loop.time()
        while due and due[0][0] <= now:
            _, fn, args = due.popleft()
            fn(*args)
        if due:
            self._timer = self.loop.call_at(due[0][0], self._fire)


_LINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[object, DelayLine]] = (
    weakref.WeakKeyDictionary()
)


class Mailbox:
    """Calls posted from any thread, run on `loop` in order; one wake-up of the loop carries all pending ones.

    A call may be given a time (`time.monotonic()`, the clock of asyncio's loops) before which it must not
    run: that is how links add latency, without a timer on the sending side.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._later = DelayLine(loop)
        self._lock = threading.Lock()
        self._calls: list[tuple[float, Callable[..., object], tuple[Any, ...]]] = []
        self._wakeup_pending = False

    def post(self, fn: Callable[..., object], *args: Any, not_before: float = 0.0) -> None:
        with self._lock:
            self._calls.append((not_before, fn, args))
            if self._wakeup_pending:
                return
            self._wakeup_pending = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nothing there will run again
            pass

    def _drain(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
            self._wakeup_pending = False
        now = self._loop.time()
        for not_before, fn, args in calls:
            if not_before > now:
                self._later.add_at(not_before, fn, *args)
            else:
                fn(*args)


class NodeHost:
    """The thread and event loop that in-process nodes run on; `close` stops both."""

    def __init__(self, name: str = "skyward-inprocess-nodes") -> None:
        self.loop = asyncio.new_event_loop()
        self.inbox = Mailbox(self.loop)  # what clients send to the nodes hosted here
        self.replies_later = DelayLine(self.loop)  # replies held for the links' latency
        self._outboxes: dict[asyncio.AbstractEventLoop, Mailbox] = {}
        self._lock = threading.Lock()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name=name, daemon=True)
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

    def outbox(self, client_loop: asyncio.AbstractEventLoop) -> Mailbox:
        """The mailbox that carries replies from the nodes here to `client_loop` (one per client loop)."""
        with self._lock:
            box = self._outboxes.get(client_loop)
            if box is None:
                box = self._outboxes[client_loop] = Mailbox(client_loop)
            return box

    def call(self, fn: Callable[[], object], timeout: float = 10.0) -> None:
        """Run `fn()` on the host's loop and wait for it (from another thread)."""
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(exc)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the in-process node host did not answer within {timeout:.0f}s")
        if failure:
            raise failure[0]

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident

    def cpu_seconds(self) -> float:
        """CPU time the host's thread has used (its nodes' own work: agents, virtual slots, mailboxes)."""
        ident = self._thread.ident
        if ident is None or not self._thread.is_alive():
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(ident))

    def close(self) -> None:
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()
