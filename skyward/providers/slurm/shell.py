"""Where the Slurm commands run: on this machine (``login=None``: the client runs where ``salloc`` works).

`skyward.providers.slurm.login_shell` runs them on a login node over SSH instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import Any, Protocol


class Process(Protocol):
    """A running command, as much of `subprocess.Popen` as the provider uses (text lines on `stdout`)."""

    stdin: Any
    stdout: Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class Shell(Protocol):
    """Runs Slurm's commands (``salloc``, ``srun``, ``scontrol``, ``scancel``) where they reach a cluster."""

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a short command to its end; its output as text. Never raises for a failing command."""
        ...

    def spawn(self, argv: Sequence[str], stdin: bool) -> Process:
        """Start a long-running command: stdout and stderr merged, as text lines; stdin a pipe if asked."""
        ...

    def reach(self, address: str, port: int) -> str:
        """The ``host:port`` that reaches `address:port` (a node's agent) from this client."""
        ...

    def lost(self) -> str | None:
        """Why the cluster cannot be reached any more (the login connection dropped); ``None`` while it can."""
        ...

    def close(self) -> None:
        """Release what reaching the cluster holds (connections, forwards)."""
        ...


def command_env() -> dict[str, str]:
    """This process's environment less the ``SLURM_*`` variables of a job it may run in (an interactive
    session's ``SLURM_JOB_ID``, ``SLURM_CPUS_PER_TASK``...), which would otherwise steer ``srun`` into that
    job. ``SLURM_CONF`` (which cluster) stays."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}


class LocalShell:
    """The Slurm commands of this machine."""

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                list(argv), capture_output=True, text=True, env=command_env(), timeout=timeout, check=False
            )
        except FileNotFoundError:
            return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(
                list(argv), 124, "", f"{argv[0]}: no answer within {timeout:.0f}s"
            )

    def spawn(self, argv: Sequence[str], stdin: bool) -> subprocess.Popen[str]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            env=command_env(),
            start_new_session=True,  # Ctrl-C in the terminal reaches the client, which cancels in order
        )

    def reach(self, address: str, port: int) -> str:
        return f"{address}:{port}"

    def lost(self) -> str | None:
        """This machine's commands do not go away."""
        return None

    def close(self) -> None:
        """Nothing is held."""
