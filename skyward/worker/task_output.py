"""What tasks print, as whole lines marked with their stream, on the agent's one output channel.

A node agent has one channel back to the client (a pipe, an SSH session, srun's output) that every slot shares.
`install` replaces ``sys.stdout`` and ``sys.stderr`` with writers that keep each thread's unfinished line to
itself and write only whole lines, under one lock: two slots' lines never merge, however the tasks write
(``print(a, b)`` is several writes). Lines written to stderr (tracebacks printed by tasks, warnings) start with
`STDERR_MARK`, so the client sends them to its own stderr (`skyward.providers.agent_session`).

What native code or a subprocess writes to the descriptors themselves bypasses this and arrives as stdout lines.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import BinaryIO

#: Starts a line written to a task's stderr (ASCII "unit separator": not in ordinary output, and not a line break to str.splitlines).
STDERR_MARK = "\x1f"

_LOCK = threading.Lock()  # one line at a time on the shared channel
_sink: BinaryIO | None = None  # the channel, once `install` ran


class LineWriter(io.TextIOBase):
    """A text stream that writes whole lines to `sink`, each prefixed with `mark`; per-thread partial lines."""

    def __init__(self, sink: BinaryIO, mark: str, name: str) -> None:
        self._sink = sink
        self._mark = mark.encode()
        self._name = name
        self._local = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._sink.fileno()

    def write(self, text: str) -> int:
        pending = getattr(self._local, "text", "") + text
        *lines, self._local.text = pending.split("\n")
        if lines:
            self._emit(lines)
        return len(text)

    def end_line(self) -> None:
        """Write this thread's unfinished line, if any (its task has ended)."""
        pending = getattr(self._local, "text", "")
        if pending:
            self._local.text = ""
            self._emit([pending])

    def flush(self) -> None:
        # An unfinished line stays with its thread: flushing it would let another slot's line cut into it.
        try:
            self._sink.flush()
        except (OSError, ValueError):
            pass

    def _emit(self, lines: list[str]) -> None:
        data = b"".join(self._mark + line.encode("utf-8", "replace") + b"\n" for line in lines)
        with _LOCK:
            try:
                self._sink.write(data)
                self._sink.flush()
            except (OSError, ValueError):  # no channel left (the client is gone): nothing to tell
                pass


def install(fd: int = 1) -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` of this process through line writers onto descriptor `fd`."""
    global _sink
    sink = _sink = os.fdopen(os.dup(fd), "wb", buffering=0)
    sys.stdout = LineWriter(sink, "", "<task stdout>")
    sys.stderr = LineWriter(sink, STDERR_MARK, "<task stderr>")


def forward(data: bytes) -> None:
    """Write whole lines another process wrote (a process slot's, already marked) onto the channel."""
    sink = _sink if _sink is not None else sys.stdout.buffer
    with _LOCK:
        try:
            sink.write(data)
            sink.flush()
        except (OSError, ValueError):  # no console left: the slot's tail still tells
            pass


def end_of_task() -> None:
    """Write the current thread's unfinished lines: a task's last line without a newline is still its own."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LineWriter):
            stream.end_line()
