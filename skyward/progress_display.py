"""What skyward shows while it works: node bootstraps and long calls, live in a terminal, plain lines elsewhere.

Built on `rich` (a kept library for terminal rendering). Whether the output is a terminal decides the form:
in a terminal a live table of the nodes (one row each: phase, elapsed, details) and a progress bar per call;
otherwise (a log file, CI, a pipe) one plain line per event and a line per tenth of a call's tasks, so that logs
stay readable. Everything goes to stderr unless told otherwise; providers' ``quiet=True`` shows nothing.

This is the one place skyward writes progress; everything else it says goes through `logging` (and the status
lines of providers, `status_line`, are INFO records of their loggers as well).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, as_completed
from typing import IO, Any, Self, TypeVar

from skyward.bootstrap.progress import BootstrapEvent

T = TypeVar("T")


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or a file-like without isatty
        return False


def status_line(log: logging.Logger, record: str, line: str, *, shown: bool) -> None:
    """A provider's status message (instances launched, a Slurm job queued): an INFO record of `log` (its
    named logger), and `line` on stderr unless the provider is quiet (`shown` False): what a pool shows by
    default, without logging configured. Warnings are not status: they go to their logger only."""
    log.info("%s", record)
    if shown:
        print(line, file=sys.stderr, flush=True)


class BootstrapDisplay:
    """The default display of node bootstraps (`sky.SSH`, and the providers built on it).

    Call it with each `BootstrapEvent`; `close` when the nodes are up (or failed). In a terminal the table is
    redrawn in place and left on screen when closed; elsewhere each event is one line, as
    ``skyward [node host] phase: details (elapsed)``.
    """

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._live_wanted = is_terminal(self._stream) if live is None else live
        self._rows: dict[str, BootstrapEvent] = {}
        self._lock = threading.Lock()
        self._live: Any = None  # rich.live.Live, started with the first event

    def __call__(self, event: BootstrapEvent) -> None:
        with self._lock:
            self._rows[event.node] = event
            if not self._live_wanted:
                print(event, file=self._stream, flush=True)
                return
            if self._live is None:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(console=Console(file=self._stream), refresh_per_second=8, transient=False)
                self._live.start()
            self._live.update(self._table(), refresh=True)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title="skyward: starting nodes", title_justify="left", expand=False)
        for column in ("node", "host", "phase", "elapsed", "details"):
            table.add_column(column, no_wrap=column != "details")
        for event in self._rows.values():
            style = "green" if event.phase == "ready" else None
            table.add_row(
                event.node, event.host, event.phase, f"{event.elapsed:.1f}s", event.message, style=style
            )
        return table

    def close(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()


#: Seconds a call runs before its automatic bar appears (``progress=None``): a short call shows nothing.
AUTO_DELAY = 1.0


def call_progress(
    total: int | None,
    description: str,
    progress: bool | None,
    *,
    quiet: bool = False,
    stream: IO[str] | None = None,
) -> CallProgress | None:
    """The display of one call of many tasks, or None for none.

    `progress`: ``True`` shows it (a bar in a terminal, a line per tenth of the tasks elsewhere); ``False``
    shows nothing; ``None`` (automatic) shows a bar in a terminal once the call has run `AUTO_DELAY` seconds,
    and nothing elsewhere or when the pool's provider is `quiet`.
    """
    if progress is False or (progress is None and quiet):
        return None
    stream = stream if stream is not None else sys.stderr
    if progress is None:
        return (
            CallProgress(total, description, stream, live=True, delay=AUTO_DELAY)
            if is_terminal(stream)
            else None
        )
    return CallProgress(total, description, stream)


class CallProgress:
    """Progress of one call of many tasks (`sky.gather(..., progress=True)`, `pool.map`, a joblib call).

    In a terminal a rich progress bar (after `delay` seconds: shown from the first advance after it); elsewhere
    a line each time another tenth of the tasks is done. `total` may be unknown (None) at first and given
    later to `advance` (a joblib call over a generator). `advance` may be called from any thread.
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        stream: IO[str] | None = None,
        *,
        live: bool | None = None,
        delay: float = 0.0,
    ):
        self.total = total
        self.description = description
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._live = is_terminal(self._stream) if live is None else live
        self._started = time.monotonic()
        self._delay = delay
        self._next_tenth = 1
        self._bar: Any = None
        self._task: Any = None
        self._closed = False
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        if self._live and self.total and not self._delay:
            with self._lock:
                self._start_bar()
        return self

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=self._stream),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, completed=self.done)

    def advance(self, count: int = 1, *, total: int | None = None) -> None:
        """`count` more tasks are done (of `total`, when it becomes known)."""
        with self._lock:
            self.done += count
            if total is not None:
                self.total = total
            if self._closed:
                return
            if self._live:
                if self._bar is None and time.monotonic() - self._started >= self._delay:
                    self._start_bar()
                if self._bar is not None:
                    self._bar.update(self._task, completed=self.done, total=self.total)
                return
            if self.total and self._next_tenth <= 10 and self.done * 10 >= self._next_tenth * self.total:
                self._next_tenth = min(self.done * 10 // self.total, 10) + 1  # one line, however far it got
                elapsed = time.monotonic() - self._started
                print(
                    f"skyward: {self.description}: {self.done}/{self.total} done ({elapsed:.1f}s)",
                    file=self._stream,
                    flush=True,
                )

    def close(self) -> None:
        """Stop the display (a bar is left on screen as it stands); later advances show nothing."""
        with self._lock:
            self._closed = True
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(self, futures: Iterable[Future[T]]) -> Iterator[Future[T]]:
        """Yield `futures` as they finish, advancing the display for each."""
        for future in as_completed(list(futures)):
            self.advance()
            yield future

    def watch(self, futures: Iterable[Future[Any]]) -> None:
        """Advance the display as each of `futures` finishes, whoever waits for them; closed after the last."""
        futures = list(futures)
        remaining = [len(futures)]
        lock = threading.Lock()

        def one_done(_: Future[Any]) -> None:
            self.advance()
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                self.close()

        for future in futures:
            future.add_done_callback(one_done)
