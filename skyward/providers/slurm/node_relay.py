"""What ``srun`` starts on a compute node: the node agent, and a relay that makes it reachable from outside.

``python -I -u -m skyward.providers.slurm.node_relay``, as the one task of a job step. The node agent
(``python -m skyward.worker``) binds 127.0.0.1 on its machine; compute nodes have no SSH tunnel, so this
program listens on the node's cluster address (the ``NodeAddr`` Slurm reaches it at) and copies bytes between
each connection there and the agent's port. It reads no byte of them: the connection is mutual TLS end to end
between client and agent (`skyward.credentials`), so a peer without the pool's certificate gets no further
through the relay than it would at the agent itself.

Protocol with the client (over srun's stdin and stdout):

- stdin, first line: JSON ``{"bind": address, "env": {...}}``: where to listen, and ``Image.env`` for the
  agent (secrets in it stay off command lines). Everything after it goes to the agent's stdin unchanged (its
  configuration line first); stdin's EOF (the client closing, or gone) closes the agent's stdin.
- stdout: the agent's output; its ready line (``SKYWARD-READY {"port": agent port, "pid": agent pid}``) is
  held until the relay listens and then passed on with ``"relay": <the relay's port>`` added.
- Exit status: the agent's (``128 + n`` when signal ``n`` killed it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from typing import IO

from skyward.worker import READY_PREFIX

_CHUNK = 1 << 18


def _read_line(fd: int) -> bytes:
    """One line from `fd`, read a byte at a time: nothing past it is consumed (the agent reads the rest)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            sys.exit("skyward node relay: stdin closed before the settings line")
        line += byte
    return line


def _copy_stdin(agent_stdin: IO[bytes]) -> None:
    """Client -> agent: the configuration line, then nothing until EOF ("client gone")."""
    with contextlib.suppress(OSError):
        while chunk := os.read(0, 65536):
            agent_stdin.write(chunk)
            agent_stdin.flush()
    with contextlib.suppress(OSError):
        agent_stdin.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


async def _serve(bind: str, agent_port: int, listening: asyncio.Future[int]) -> None:
    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            agent_reader, agent_writer = await asyncio.open_connection("127.0.0.1", agent_port)
        except OSError:
            client_writer.close()
            return
        for sock in (client_writer.get_extra_info("socket"), agent_writer.get_extra_info("socket")):
            if sock is not None:  # small messages (heartbeats, replies) must not wait for Nagle
                sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        await asyncio.gather(_pipe(client_reader, agent_writer), _pipe(agent_reader, client_writer))

    server = await asyncio.start_server(relay, bind, 0)
    listening.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _start_relay(bind: str, agent_port: int) -> int:
    """Run the relay on a thread of its own; returns the port it listens on."""
    loop = asyncio.new_event_loop()
    listening: asyncio.Future[int] = loop.create_future()
    task = loop.create_task(_serve(bind, agent_port, listening))
    threading.Thread(target=loop.run_forever, daemon=True, name="relay").start()
    ready = threading.Event()
    port: list[int] = []

    def done(future: asyncio.Future[int]) -> None:
        if not future.cancelled() and future.exception() is None:
            port.append(future.result())
        ready.set()

    loop.call_soon_threadsafe(listening.add_done_callback, done)
    loop.call_soon_threadsafe(task.add_done_callback, lambda t: ready.set())
    ready.wait()
    if not port:
        exc = task.exception() if task.done() and not task.cancelled() else None
        raise OSError(f"cannot listen on {bind}: {exc}")
    return port[0]


def _relay_log() -> logging.Logger:
    """The relay's logger: its records go to stdout, the stream the client forwards as this node's output."""
    log = logging.getLogger("skyward.slurm.relay")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    return log


def main() -> None:
    settings = json.loads(_read_line(0))
    env = {**os.environ, **{str(k): str(v) for k, v in settings.get("env", {}).items()}}
    agent = subprocess.Popen(
        [sys.executable, "-I", "-u", "-m", "skyward.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert agent.stdin is not None and agent.stdout is not None
    threading.Thread(target=_copy_stdin, args=(agent.stdin,), daemon=True, name="stdin").start()
    announced = False
    for raw in agent.stdout:
        line = raw.decode(errors="replace")
        if not announced and line.startswith(READY_PREFIX):
            announced = True
            fields = json.loads(line[len(READY_PREFIX) :])
            try:
                port = _start_relay(settings["bind"], int(fields["port"]))
            except OSError as exc:
                _relay_log().error("skyward node relay: %s", exc)
                agent.kill()
                break
            fields["relay"] = port
            line = READY_PREFIX + json.dumps(fields) + "\n"
        sys.stdout.write(line)
        sys.stdout.flush()
    returncode = agent.wait()
    sys.stdout.flush()
    os._exit(returncode if returncode >= 0 else 128 - returncode)


if __name__ == "__main__":
    main()
