"""Calling the node script over one SSH connection: one command, its output lines, and the answer it prints.

The node half is `skyward.bootstrap.node_script`; its text goes on the stdin of the node's interpreter, followed
by one call. `probe` is the first call a node gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections import deque
from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from skyward.bootstrap.facts import NodeFacts
from skyward.errors import ProvisionError

if TYPE_CHECKING:
    import asyncssh

_NODE_SCRIPT = files("skyward.bootstrap").joinpath("node_script.py").read_text()
TAIL_LINES = 40  # of a failed command's output, in its error


class BootstrapFailed(ProvisionError):
    """A node's environment could not be set up. The message names the host and ends with its log's tail."""


def remote_path(path: str) -> str:
    """Quote `path` for the remote shell, keeping a leading ``~/`` meaning the login's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


async def run_node_script(
    conn: asyncssh.SSHClientConnection,
    python: str,
    host: str,
    params: dict[str, Any],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Run one command of the node script with the node's `python`; returns its exit status and output lines."""
    import asyncssh

    program = _NODE_SCRIPT + f"\n_main(json.loads({json.dumps(json.dumps(params))}))\n"
    # -I: the login's home is the working directory; a stray json.py there must not shadow the stdlib.
    command = f"exec {remote_path(python)} -I -"
    lines: deque[str] = deque(maxlen=2000)
    process: asyncssh.SSHClientProcess[str] | None = None
    pid: int | None = None  # the script's, on the node: what giving up interrupts
    try:
        async with asyncio.timeout(timeout):
            process = await conn.create_process(
                command, stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
            )
            # The command may have exited already (no such interpreter): its output, read below, says why,
            # which the BrokenPipeError of writing to it would hide.
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(program)
                process.stdin.write_eof()
            async for raw in process.stdout:
                if not raw:  # asyncssh may end with an empty read; a blank line is "\n"
                    break
                line = raw.rstrip("\n")
                if line.startswith("SKYWARD-PID "):
                    pid = int(line.split()[1])
                    continue
                lines.append(line)
                if on_line is not None:
                    on_line(line)
            await process.wait_closed()
    except BaseException as exc:  # timed out, cancelled (Ctrl-C on the client), the connection lost
        await _interrupt(conn, process, pid)
        if not isinstance(exc, TimeoutError):
            raise
        raise BootstrapFailed(
            f"{host}: the bootstrap step {params['command']!r} did not finish within {timeout:.0f}s; last output:\n"
            + "\n".join(list(lines)[-TAIL_LINES:])
        ) from None
    assert process is not None
    status = process.exit_status if process.exit_status is not None else -1
    return status, list(lines)


async def _interrupt(
    conn: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[str] | None, pid: int | None
) -> None:
    """Stop the node script when its caller gives up on it (Ctrl-C, a timeout): SIGINT makes it kill its running
    installer and release its lock, so nothing keeps writing into an environment a later bootstrap rebuilds.

    Sent with ``kill`` over the same connection: sshd does not pass on the SSH protocol's signal requests
    (OpenSSH 9.2 ignores them), and closing the channel leaves a command without a terminal running."""
    if process is None or process.exit_status is not None:
        return
    if pid is not None:
        with contextlib.suppress(Exception):  # a connection already gone has nothing left to stop
            await asyncio.wait_for(conn.run(f"kill -INT {pid}", check=False), timeout=10)
    with contextlib.suppress(Exception):
        process.close()


def answer_in(lines: list[str], prefix: str) -> dict[str, Any] | None:
    """The JSON of the last output line that starts with `prefix` (the script's answer), or ``None``."""
    for line in reversed(lines):
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1 :])
    return None


async def probe(conn: asyncssh.SSHClientConnection, python: str, host: str, timeout: float) -> NodeFacts:
    """Ask the node about its interpreter, platform and tools."""
    status, lines = await run_node_script(conn, python, host, {"command": "probe"}, timeout=timeout)
    answer = answer_in(lines, "SKYWARD-FACTS")
    if answer is None:
        tail = "\n".join(lines[-TAIL_LINES:]) or "(no output)"
        if status == 127:
            raise BootstrapFailed(
                f"{host}: the interpreter {python!r} was not found there (exit 127). Pass SSH(python=...) as a name "
                f"on the login's PATH or an absolute path. Output:\n{tail}"
            )
        raise BootstrapFailed(f"{host}: probing the node with {python!r} failed (exit {status}):\n{tail}")
    return NodeFacts.from_json(answer)
