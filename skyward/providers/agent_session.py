"""What a provider reads from a node agent's output, the same for every transport (pipe, SSH session).

The agent prints one ready line (``READY_PREFIX`` + JSON with its port and pid) once it listens; every other
line is what tasks print. A provider feeds each line here: the ready line comes back parsed, the others are
forwarded to the user prefixed with the node's name and kept as a tail for crash reports.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections import deque
from dataclasses import dataclass

from skyward.providers.base import OUTPUT_TAIL_LINES, WorkerExit
from skyward.worker import READY_PREFIX
from skyward.worker.task_output import STDERR_MARK

_PRINTING = threading.Lock()

#: Lines kept per node: enough for a start failure's message (`WorkerExit` keeps the last `OUTPUT_TAIL_LINES`).
TAIL_LINES = 40


@dataclass(frozen=True, slots=True)
class Announcement:
    """The agent's ready line: the port it listens on (on its machine), its process id and its slots' native
    thread limit (``OMP_NUM_THREADS``; ``None`` from an agent that does not say)."""

    port: int
    pid: int
    threads: str | None = None


class AgentOutput:
    """One node's agent output: parses the ready line, forwards task output, keeps the tail."""

    def __init__(self, node: str, forward: bool) -> None:
        self.node = node
        self.forward = forward
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, line: str, *, expect_ready: bool) -> Announcement | None:
        """Take one output line (without its newline); returns the announcement when it is the ready line.

        `expect_ready` is False once the agent has announced itself: a task printing the prefix is then output.
        """
        if expect_ready and line.startswith(READY_PREFIX):
            fields = json.loads(line[len(READY_PREFIX) :])
            threads = fields.get("threads")
            return Announcement(
                int(fields["port"]), int(fields["pid"]), None if threads is None else str(threads)
            )
        stream = sys.stdout
        if line.startswith(STDERR_MARK):  # the task wrote it to its stderr (`skyward.worker.task_output`)
            line, stream = line[len(STDERR_MARK) :], sys.stderr
        self.tail.append(line)
        if self.forward:
            # A closed or broken console must not look like a dead node.
            # One write per line, under one lock for every node: print()'s separate write of the newline let
            # two nodes' lines run together here.
            with _PRINTING, contextlib.suppress(OSError, ValueError):
                stream.write(f"[{self.node}] {line}\n")
                stream.flush()
        return None

    def log(self) -> str:
        """The kept output, for a start failure's message."""
        return "\n".join(self.tail) or "(no output)"

    def exit(self, returncode: int) -> WorkerExit:
        """How the agent ended, with its last lines."""
        return WorkerExit.from_returncode(returncode, tuple(self.tail)[-OUTPUT_TAIL_LINES:])
