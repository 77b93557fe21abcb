"""``Slurm(login="user@cluster")``: Slurm's commands run on a login node over SSH, and the client reaches each
node's agent through a local forward of that connection (the login node dials the node's ``NodeAddr``).

One asyncssh connection (host key verified as for `sky.SSH`) on skyward's I/O loop carries every command,
every ``srun`` session and every forward. The forwards listen on 127.0.0.1 here only.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shlex
import subprocess
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from skyward.errors import ProvisionError
from skyward.ioloop import EventLoopThread, shared_loop
from skyward.providers.ssh_connect import HostSpec, connect

if TYPE_CHECKING:
    import asyncssh

_GONE = (OSError, TimeoutError, asyncio.CancelledError)


class _RemoteStdin:
    """The stdin of a remote command, written from any thread (asyncssh's writer belongs to the loop)."""

    def __init__(self, io: EventLoopThread, process: asyncssh.SSHClientProcess[str]) -> None:
        self.io, self._process = io, process
        self.closed = False

    def write(self, text: str) -> None:
        self.io.loop.call_soon_threadsafe(self._write, text)

    def _write(self, text: str) -> None:
        with contextlib.suppress(Exception):  # a channel closed meanwhile: its output says why
            self._process.stdin.write(text)

    def flush(self) -> None:
        """Writes are queued on the loop in order; nothing to flush."""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.io.loop.call_soon_threadsafe(self._eof)

    def _eof(self) -> None:
        with contextlib.suppress(Exception):
            self._process.stdin.write_eof()


class RemoteProcess:
    """A command running on the login node, with the part of `subprocess.Popen` the provider uses."""

    def __init__(
        self, io: EventLoopThread, process: asyncssh.SSHClientProcess[str], argv: Sequence[str]
    ) -> None:
        self.io, self._process, self.args = io, process, list(argv)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._done = threading.Event()
        self.stdin = _RemoteStdin(io, process)
        self.stdout = iter(self._lines.get, None)
        io.run(self._read())

    async def _read(self) -> None:
        import asyncssh

        try:
            with contextlib.suppress(asyncssh.Error, *_GONE):
                async for line in self._process.stdout:
                    if not line:
                        break
                    self._lines.put(line)
            with contextlib.suppress(asyncssh.Error, *_GONE):
                await asyncio.wait_for(self._process.wait_closed(), timeout=5)
        finally:
            self._lines.put(None)
            self._done.set()

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        if not self._done.is_set():
            return None
        status = self._process.returncode
        return status if status is not None else 255  # the connection ended without an exit status

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        status = self.poll()
        assert status is not None
        return status

    def terminate(self) -> None:
        """Close the session: srun and salloc end with their channel."""
        self.io.loop.call_soon_threadsafe(self._process.close)

    kill = terminate


class LoginShell:
    """Slurm's commands on a login node, over one SSH connection."""

    def __init__(self, conn: asyncssh.SSHClientConnection, io: EventLoopThread, where: str) -> None:
        self.conn, self.io, self.where = conn, io, where  # the connection, the loop it lives on, the login
        self._listeners: list[Any] = []
        self._closing = False

    @classmethod
    def open(cls, login: str, *, key_file: str | None, known_hosts: str | None, verify_host_keys: bool,
             timeout: float) -> LoginShell:  # fmt: skip
        io = shared_loop()
        target = HostSpec.parse(login)
        opening = io.run(
            connect(target, key_file=key_file, known_hosts=known_hosts, verify_host_keys=verify_host_keys,
                    timeout=timeout)
        )  # fmt: skip
        return cls(opening.result(timeout + 10), io, target.text)

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        import asyncssh

        async def run() -> asyncssh.SSHCompletedProcess:
            return await self.conn.run(shlex.join(argv), check=False, timeout=timeout)

        try:
            done = self.io.run(run()).result(timeout + 5)
        except (asyncssh.Error, *_GONE) as exc:
            return subprocess.CompletedProcess(list(argv), 255, "", f"{self.where}: {exc}")
        status = 255 if done.exit_status is None else done.exit_status
        return subprocess.CompletedProcess(list(argv), status, str(done.stdout or ""), str(done.stderr or ""))

    def spawn(self, argv: Sequence[str], stdin: bool) -> RemoteProcess:
        import asyncssh

        async def start() -> asyncssh.SSHClientProcess[str]:
            return await self.conn.create_process(
                shlex.join(argv), stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
            )

        try:
            process = self.io.run(start()).result(60)
        except (asyncssh.Error, *_GONE) as exc:
            raise ProvisionError(f"{self.where}: cannot run {argv[0]}: {exc}") from None
        remote = RemoteProcess(self.io, process, argv)
        if not stdin:
            remote.stdin.close()
        return remote

    def reach(self, address: str, port: int) -> str:
        """A local forward (127.0.0.1 here) to `address:port` as the login node reaches it."""

        async def forward() -> Any:
            return await self.conn.forward_local_port("127.0.0.1", 0, address, port)

        listener = self.io.run(forward()).result(30)
        self._listeners.append(listener)
        return f"127.0.0.1:{listener.get_port()}"

    def lost(self) -> str | None:
        """Set once the SSH connection ended without `close`: salloc's ``cat`` and every ``srun`` ended with it
        on the login node, so Slurm has the job back (the dead man's switch) and nothing here can reach it."""
        if self._closing or not self.conn.is_closed():
            return None
        return f"the SSH connection to the login node {self.where} was lost"

    def close(self) -> None:
        self._closing = True

        async def close() -> None:
            for listener in self._listeners:
                listener.close()
            self.conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.wait_closed(), timeout=5)

        with contextlib.suppress(Exception):
            self.io.run(close()).result(10)
