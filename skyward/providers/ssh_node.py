"""One SSH node's worker session: start the worker and its tunnel, forward its output, tell how it ended, stop it.

The worker runs in the node's environment, started over the node's SSH connection as the session's leader
(so its process group is its whole tree); its stdin stays open, and its EOF tells it that its client is gone.
The client reaches it through a local forward that listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skyward.agent_config import AgentConfig
from skyward.bootstrap.node_commands import remote_path
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.providers.agent_session import AgentOutput, Announcement
from skyward.providers.base import NodeInfo, StartedNode, WorkerExit
from skyward.providers.ssh_connect import HostSpec
from skyward.spec import ClusterSpec
from skyward.volumes import agent_entries

if TYPE_CHECKING:
    import asyncssh

# Reads one line of environment variables (JSON) from stdin without buffering past it, applies them, and
# becomes the worker, which then reads its own configuration line. Secrets in image.env never reach a command
# line, where `ps` would show them. The worker runs isolated (-I): the login's home is its working directory, and
# a ~/json.py must not shadow the stdlib there (nor PYTHONPATH from the login's profile reach it).
_LAUNCHER = (
    "import json,os,sys\n"
    "line=b''\n"
    "while not line.endswith(b'\\n'):\n"
    "    c=os.read(0,1)\n"
    "    if not c: sys.exit('skyward launcher: stdin closed before the environment line')\n"
    "    line+=c\n"
    "os.environ.update(json.loads(line))\n"
    "os.execv(sys.executable,[sys.executable,'-I','-u','-m','skyward.worker'])\n"
)


@dataclass(eq=False)
class SSHNode:
    """One node of an SSH deployment: its host, connection, worker session and tunnel."""

    index: int
    target: HostSpec
    name: str
    started_at: float = field(default_factory=time.monotonic)
    conn: asyncssh.SSHClientConnection | None = None
    process: asyncssh.SSHClientProcess[str] | None = None
    listener: asyncssh.SSHListener | None = None
    pid: int | None = None
    threads: str | None = None  # its slots' native thread limit, as its agent said
    pump: asyncio.Task[None] | None = None
    exited: bool = False
    launch: Callable[[], Awaitable[int]] | None = None  # starts its worker (again, on a restart)
    info: NodeInfo | None = None
    output: AgentOutput | None = None  # set when its worker first starts

    def started(self, cluster: ClusterSpec, port: int, dial: str) -> StartedNode:
        """What the pool knows of this node once its worker first runs (recorded as `info`)."""
        self.info = NodeInfo(
            index=self.index,
            name=self.name,
            host=self.target.host,
            pid=self.pid or 0,
            concurrency=cluster.worker.concurrency,
            executor=cluster.worker.executor,
            threads=self.threads,
        )
        return StartedNode(info=self.info, port=port, dial=dial)


async def open_worker(node: SSHNode) -> tuple[int, str]:
    """Start the node's worker and its tunnel: a local forward listening on 127.0.0.1 only, to the
    worker's 127.0.0.1 port there. Returns that port and the address that reaches it here."""
    assert node.conn is not None and node.launch is not None
    port = await node.launch()
    node.listener = await node.conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)
    return port, f"127.0.0.1:{node.listener.get_port()}"


async def reopen_worker(node: SSHNode) -> tuple[int, str]:
    """Start the worker of `node` again, as it was started first, over its existing connection, with a new
    tunnel; returns what `open_worker` returns."""
    import asyncssh

    if node.listener is not None:
        node.listener.close()
    if node.pump is not None:
        node.pump.cancel()
    node.exited = False
    try:
        return await open_worker(node)
    except (ProvisionError, asyncio.CancelledError):
        raise
    except (asyncssh.Error, OSError) as exc:
        raise ProvisionError(f"{node.target.text}: cannot restart {node.name}: {exc}") from exc


async def start_worker(
    node: SSHNode,
    env_python: str,
    image: Image,
    cluster: ClusterSpec,
    secret: bytes,
    lease: float,
    *,
    nodes_on_machine: int,
    forward_output: bool,
    start_timeout: float,
) -> int:
    """Start the worker of `node` in its environment (`env_python`) over the node's SSH connection, send it its
    environment and configuration on stdin, and wait for its announcement; returns the port it listens on there."""
    import asyncssh

    assert node.conn is not None
    # `exec` all the way down: the worker is the session leader, so its process group is its whole tree.
    command = f"cd && exec {remote_path(env_python)} -I -c {shlex.quote(_LAUNCHER)}"
    process = await node.conn.create_process(
        command, stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
    )
    node.process = process
    config = AgentConfig.for_node(  # this node's TLS key and certificate; not the secret
        secret,
        node.name,
        concurrency=cluster.worker.concurrency,
        executor=cluster.worker.executor,
        lease=lease,
        nodes_on_machine=nodes_on_machine,
        volumes=agent_entries(cluster.volumes),  # mounted by the agent (credentials on stdin)
    )
    environment = {**image.env, "PYTHONUNBUFFERED": "1"}
    # A command that fails at once (no such interpreter) may have closed the channel already: its output,
    # read below, says why, which a BrokenPipeError would hide.
    with contextlib.suppress(BrokenPipeError, asyncssh.Error, OSError):
        process.stdin.write(json.dumps(environment) + "\n" + config.encode())
    # stdin stays open: its EOF (teardown, or the connection dropping) tells the worker its client is gone.
    if node.output is None:
        node.output = AgentOutput(node.name, forward_output)
    output = node.output
    ready: Announcement | None = None
    timed_out = False
    try:
        async with asyncio.timeout(start_timeout):
            async for raw in process.stdout:
                if not raw:  # asyncssh may end with an empty read; a blank line is "\n"
                    break
                ready = output.feed(raw.rstrip("\n"), expect_ready=True)
                if ready is not None:
                    break
    except TimeoutError:
        timed_out = True
    if ready is None:
        if not timed_out:  # its output ended: the exit status follows shortly
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                await asyncio.wait_for(process.wait_closed(), timeout=2)
        status = process.exit_status
        log = output.log()
        if timed_out:
            state = f"did not start within {start_timeout:.0f}s"
        else:
            state = f"exited with status {status}"
        raise ProvisionError(f"{node.target.text}: the worker of {node.name} {state}. Its output:\n{log}")
    node.pid, node.threads = ready.pid, ready.threads
    node.pump = asyncio.create_task(_pump(node, process), name=f"{node.name}-output")
    return ready.port


async def _pump(node: SSHNode, process: asyncssh.SSHClientProcess[str]) -> None:
    """Forward what the worker prints (task output) until its session ends."""
    import asyncssh

    output = node.output
    assert output is not None  # set by _start_worker before the pump starts

    try:
        with contextlib.suppress(asyncssh.Error, OSError):  # a broken channel ends the session like EOF
            async for raw in process.stdout:
                if not raw:  # asyncssh may end with an empty read; a blank line is "\n"
                    break
                output.feed(raw.rstrip("\n"), expect_ready=False)
    finally:
        if node.process is process:  # not a restarted worker's session
            node.exited = True


async def worker_exit(node: SSHNode) -> WorkerExit | None:
    """How the worker of `node` ended, told by its SSH session; ``None`` while it runs or once the connection
    is gone."""
    import asyncssh

    process, conn = node.process, node.conn
    if process is None or conn is None or conn.is_closed():
        return None
    # The tunnel can break a moment before the session's exit status arrives.
    with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
        await asyncio.wait_for(process.wait_closed(), timeout=3)
    returncode = process.returncode
    if returncode is None or conn.is_closed():
        return None
    if node.pump is not None:  # its last lines
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(node.pump), timeout=1)
    if node.output is None:
        return WorkerExit.from_returncode(returncode)
    return node.output.exit(returncode)


async def stop_node(node: SSHNode) -> None:
    """Stop the worker of `node` (stdin EOF, then its process group killed if it hangs), close its tunnel and
    its connection."""
    import asyncssh

    gone = (asyncssh.Error, OSError, TimeoutError)  # whatever a dead link or a slow host raises
    process, conn = node.process, node.conn
    if process is not None and process.exit_status is None and conn is not None and not conn.is_closed():
        with contextlib.suppress(*gone):
            process.stdin.write_eof()  # the worker exits on stdin EOF
        with contextlib.suppress(*gone):
            await asyncio.wait_for(process.wait_closed(), timeout=5)
        if process.exit_status is None and node.pid:
            # Hung (e.g. a task that ignores everything): end its whole process group.
            with contextlib.suppress(*gone):
                await asyncio.wait_for(
                    conn.run(f"kill -KILL -- -{node.pid} 2>/dev/null; kill -KILL {node.pid} 2>/dev/null"),
                    timeout=5,
                )
    if node.listener is not None:
        node.listener.close()
    if conn is not None:
        conn.close()
        with contextlib.suppress(*gone):
            await asyncio.wait_for(conn.wait_closed(), timeout=5)
    if node.pump is not None:
        node.pump.cancel()
    node.exited = True
