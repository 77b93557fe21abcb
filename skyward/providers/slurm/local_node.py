"""The part of an asyncssh connection `skyward.bootstrap` uses, on this machine: ``Slurm(python=None)`` without
``login=`` builds the image's environment under this account's home, which the compute nodes share.

`skyward.bootstrap` drives a node through one connection: commands (the node script on an interpreter's
stdin, ``kill``) and SFTP (wheels into ``~/.skyward/wheels``). Here the "node" is the submitting host itself,
so the same script runs as a local process and the uploads are file copies; the lock, the ready marker and the
layout are the ones `sky.SSH` and ``login=`` use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any


class _Stdin:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, text: str) -> None:
        self._writer.write(text.encode())

    def write_eof(self) -> None:
        self._writer.close()


class LocalProcess:
    """A shell command here, as asyncssh's `SSHClientProcess` (text lines on `stdout`, stderr merged)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self.stdin = _Stdin(process.stdin)
        self.stdout = self._lines(process.stdout)

    @staticmethod
    async def _lines(reader: asyncio.StreamReader) -> AsyncIterator[str]:
        while line := await reader.readline():
            yield line.decode(errors="replace")

    @property
    def exit_status(self) -> int | None:
        return self._process.returncode

    async def wait_closed(self) -> None:
        await self._process.wait()

    def close(self) -> None:
        """As closing a channel: the command is left to end on its own (`run_node_script` interrupts it)."""


class _Files:
    """The SFTP calls of `skyward.bootstrap.upload`, as file operations here (modes as the uploads ask)."""

    async def exists(self, path: str) -> bool:
        return os.path.exists(path)

    async def makedirs(self, path: str, attrs: Any = None, exist_ok: bool = False) -> None:
        os.makedirs(path, mode=0o700, exist_ok=exist_ok)

    @contextlib.asynccontextmanager
    async def open(self, path: str, mode: str, attrs: Any = None, encoding: Any = None) -> AsyncIterator[Any]:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            yield _Writer(out)

    async def posix_rename(self, source: str, target: str) -> None:
        os.replace(source, target)

    rename = posix_rename

    async def remove(self, path: str) -> None:
        os.unlink(path)


class _Writer:
    def __init__(self, out: Any) -> None:
        self._out = out

    async def write(self, block: bytes) -> None:
        await asyncio.to_thread(self._out.write, block)


class LocalNode:
    """This machine, as the connection `skyward.bootstrap.NodeBootstrap` and `probe` expect."""

    async def create_process(self, command: str, **_: Any) -> LocalProcess:
        process = await asyncio.create_subprocess_exec(
            shutil.which("sh") or "/bin/sh",
            "-c",
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=os.path.expanduser("~"),  # where an SSH session starts
            start_new_session=True,  # interrupted by the client as on a node (`kill -INT`), not by the terminal
        )
        return LocalProcess(process)

    async def run(self, command: str, check: bool = False, **_: Any) -> subprocess.CompletedProcess[str]:
        process = await self.create_process(command)
        process.stdin.write_eof()
        output = "".join([line async for line in process.stdout])
        await process.wait_closed()
        return subprocess.CompletedProcess(command, process.exit_status or 0, output, "")

    @contextlib.asynccontextmanager
    async def start_sftp_client(self) -> AsyncIterator[_Files]:
        yield _Files()
