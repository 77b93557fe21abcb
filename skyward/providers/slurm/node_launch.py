"""What ``srun`` starts on a compute node: a few lines that set the image's environment and become the agent.

``python -I -u -m skyward.providers.slurm.node_launch``, as the one task of a job step. It reads one line from
stdin, JSON ``{"env": {...}}`` (``Image.env``: secrets in it stay off command lines, where ``ps`` shows them,
and out of files), then replaces itself (``exec``, same pid) with ``python -I -u -m skyward.worker`` in that
environment. Everything after the line is the agent's: its configuration line (`skyward.agent_config`, whose
``bind`` is the node's own address), then nothing until EOF ("client gone"). The agent's stdout (its ready line,
then what tasks print) and its exit status are the step's.

Nothing stays between client and agent: the agent listens on the node's cluster address and the client dials
it (directly, or through the login node's forwarding), mutual TLS end to end.
"""

from __future__ import annotations

import json
import os
import sys


def _read_line(fd: int) -> bytes:
    """One line from `fd`, read a byte at a time: nothing past it is consumed (the agent reads the rest)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            sys.exit("skyward node launch: stdin closed before the settings line")
        line += byte
    return line


def main() -> None:
    settings = json.loads(_read_line(0))
    env = {**os.environ, **{str(k): str(v) for k, v in settings.get("env", {}).items()}}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-I", "-u", "-m", "skyward.worker"], env)


if __name__ == "__main__":
    main()
