"""`sky.SSH(hosts=[...])`: nodes on machines you already have (a lab cluster, an HPC allocation, VMs).

Each node is one host reached over SSH (asyncssh, on skyward's I/O loop). Its bootstrap creates, or finds, a
per-image environment under ``~/.skyward/envs/<key>`` (see `skyward.bootstrap`); the worker agent then starts
in it bound to 127.0.0.1, and the client reaches it through an SSH local forward that listens on 127.0.0.1
only. Nothing but sshd is exposed on the node.

Example::

    provider = sky.SSH(hosts=["me@gpu1", "me@gpu2:2222"], key_file="~/.ssh/id_ed25519")
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=8)) as pool:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shlex
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from skyward.agent_config import AgentConfig
from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.plan import InstallPlan, make_plan
from skyward.bootstrap.progress import BootstrapEvent, Phase, ProgressCallback, print_event
from skyward.bootstrap.remote import BootstrapSettings, NodeBootstrap, probe, remote_path
from skyward.bootstrap.requirements import project_distributions
from skyward.bootstrap.wheel_download import offline_wheelhouse
from skyward.bootstrap.wheels import Wheel, wheel_of_installed
from skyward.errors import ProvisionError, SkywardError
from skyward.image import Image
from skyward.ioloop import EventLoopThread, shared_loop
from skyward.link import Link
from skyward.providers.agent_session import AgentOutput, Announcement
from skyward.providers.base import NodeInfo, StartedNode, WorkerExit, casty_link
from skyward.providers.ssh_connect import HostSpec, connect
from skyward.redact import redacted_repr
from skyward.spec import ClusterSpec

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


@dataclass(frozen=True)
class SSH:
    """Run nodes on existing machines reachable over SSH.

    Each node needs sshd, a Python of the client's minor version, and either a package index or nothing at all:
    when a node cannot reach an index, the client ships the wheels it needs over SFTP and installs them offline.

    Attributes:
        hosts: ``"[user@]host[:port]"`` entries; node ``i`` runs on ``hosts[i]``. A pool may use fewer nodes
            than hosts (the first ones), never more. ``~/.ssh/config`` applies as it does for ``ssh``.
        key_file: the private key to log in with; ``None`` uses the SSH agent and ``~/.ssh/id_*``.
        known_hosts: the known-hosts file host keys are checked against; ``None`` is ``~/.ssh/known_hosts``.
        python: the interpreter on the nodes: a name on the login's ``PATH`` or an absolute path (``~/``
            allowed); by default ``python3.X`` for the client's 3.X (``"python3.12"`` on a 3.12 client). It must
            be the client's minor version: functions travel as that version's bytecode.
        verify_host_keys: ``False`` turns host key checking off, accepting any key. This is the documented
            opt-out for throwaway machines; a man in the middle could then run your tasks. Default: verify.
        offline: ``None`` probes whether each node reaches a package index and ships wheels when it does not;
            ``True`` always ships wheels; ``False`` always installs from the node's index.
        installer: ``"auto"`` uses uv (the node's, else a uv unpacked into ``~/.skyward/bin`` from a wheel the
            client sends), falling back to venv+pip; ``"uv"`` or ``"pip"`` insist on one.
        index_url: the package index nodes install from when online (``None``: their own configuration) and
            whose reachability is probed (``None``: PyPI).
        connect_timeout: seconds to open an SSH connection (TCP, key exchange and login).
        start_timeout: seconds the worker may take to start listening, once its environment exists.
        install_timeout: seconds one node's installation may take.
        quiet: do not print bootstrap progress.
        progress: called with each `BootstrapEvent` (on skyward's I/O thread: keep it quick); replaces the
            printed progress.
        forward_output: print what tasks print on the nodes, each line prefixed with the node's name.
        forward_agent: forward this machine's SSH agent to the nodes (tasks could then log in elsewhere with
            your keys, and so could anyone with root on a node). Off by default, whatever ``ForwardAgent`` in
            ``~/.ssh/config`` says.
    """

    hosts: Sequence[str]
    key_file: str | None = None
    known_hosts: str | None = None
    python: str = f"python{sys.version_info.major}.{sys.version_info.minor}"
    verify_host_keys: bool = True
    offline: bool | None = None
    installer: Literal["auto", "uv", "pip"] = "auto"
    index_url: str | None = None
    connect_timeout: float = 15.0
    start_timeout: float = 60.0
    install_timeout: float = 1800.0
    quiet: bool = False
    progress: ProgressCallback | None = None
    forward_output: bool = True
    forward_agent: bool = False
    name: str = field(default="ssh", init=False)
    shares_client_files: bool = field(default=False, init=False)

    __repr__ = redacted_repr  # an index_url with a token prints as https://***@host/...

    def __post_init__(self) -> None:
        if isinstance(self.hosts, str):
            raise TypeError(
                f"SSH(hosts=...) takes a list of hosts, not one string: use hosts=[{self.hosts!r}]"
            )
        hosts = tuple(self.hosts)
        if not hosts:
            raise ValueError("SSH(hosts=...) needs at least one host")
        for host in hosts:
            HostSpec.parse(host)  # fail at construction, not halfway through a launch
        if self.installer not in ("auto", "uv", "pip"):
            raise ValueError(f"SSH(installer=...) must be 'auto', 'uv' or 'pip', got {self.installer!r}")
        object.__setattr__(self, "hosts", hosts)

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> SSHDeployment:
        if cluster.nodes > len(self.hosts):
            raise ProvisionError(
                f"the pool asks for {cluster.nodes} nodes but SSH(hosts=...) lists {len(self.hosts)}: "
                f"{', '.join(self.hosts)}. Each node is one host entry (repeat a host to run several nodes on it)."
            )
        io = shared_loop()
        if io.on_loop():
            raise SkywardError("a pool cannot be started from skyward's I/O thread")
        deployment = SSHDeployment(self, io)
        starting = io.run(deployment.start(cluster, image, secret, lease))
        try:
            deployment.nodes = starting.result()
        except BaseException:  # errors and Ctrl-C alike: stop whatever had started
            starting.cancel()
            deployment.close()
            raise
        return deployment


# --- the deployment --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    index: int
    target: HostSpec
    name: str
    started_at: float = field(default_factory=time.monotonic)
    conn: asyncssh.SSHClientConnection | None = None
    process: asyncssh.SSHClientProcess[str] | None = None
    listener: asyncssh.SSHListener | None = None
    pid: int | None = None
    pump: asyncio.Task[None] | None = None
    exited: bool = False
    launch: Callable[[], Awaitable[int]] | None = None  # starts its worker (again, on a restart)
    info: NodeInfo | None = None
    output: AgentOutput | None = None  # set when its worker first starts


class SSHDeployment:
    """The nodes of one pool on SSH hosts: their connections, worker sessions and tunnels."""

    def __init__(self, provider: SSH, io: EventLoopThread) -> None:
        self._provider = provider
        self._io = io
        self._nodes: dict[int, _Node] = {}
        self._plans: dict[str, InstallPlan] = {}
        self._wheelhouses: dict[str, asyncio.Future[list[Wheel]]] = {}
        self._plan_lock = asyncio.Lock()
        self._start_task: asyncio.Task[object] | None = None
        self._closed = False
        self._nodes_per_machine: Counter[tuple[str, int | None]] = Counter()
        self.nodes: list[StartedNode] = []
        self.settings = BootstrapSettings(
            offline=provider.offline,
            installer=provider.installer,
            index_url=provider.index_url,
            install_timeout=provider.install_timeout,
        )

    async def start(
        self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float
    ) -> list[StartedNode]:
        self._start_task = asyncio.current_task()
        hosts = [HostSpec.parse(text) for text in self._provider.hosts[: cluster.nodes]]
        # A host listed n times runs n nodes, which share its CPUs (the worker sizes native thread pools by it).
        self._nodes_per_machine = Counter((host.host, host.port) for host in hosts)
        # skyward and its plugins, built on this client (once: the cache is keyed by their sources) while the
        # nodes connect, so that a node's code is always this client's code.
        project_wheels = asyncio.ensure_future(asyncio.to_thread(build_project_wheels))
        project_wheels.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unused
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        self._start_node(index, target, cluster, image, secret, lease, project_wheels)
                    )
                    for index, target in enumerate(hosts)
                ]
        except BaseExceptionGroup as failures:
            raise _first(failures) from None
        return [task.result() for task in tasks]

    async def _start_node(
        self,
        index: int,
        target: HostSpec,
        cluster: ClusterSpec,
        image: Image,
        secret: bytes,
        lease: float,
        project_wheels: asyncio.Future[tuple[Wheel, ...]],
    ) -> StartedNode:
        node = _Node(index, target, f"{cluster.pool_id}-node-{index}")
        self._nodes[index] = node

        def emit(phase: Phase, message: str = "") -> None:
            self._emit(
                BootstrapEvent(node.name, target.text, phase, message, time.monotonic() - node.started_at)
            )

        try:
            emit("connect")
            provider = self._provider
            node.conn = await connect(
                target,
                key_file=provider.key_file,
                known_hosts=provider.known_hosts,
                verify_host_keys=provider.verify_host_keys,
                timeout=provider.connect_timeout,
                forward_agent=provider.forward_agent,
            )
            emit("probe", f"{self._provider.python}")
            facts = await probe(node.conn, self._provider.python, target.text, self.settings.probe_timeout)
            _check_python(facts, image, target.text)
            plan = await self._plan_for(image, facts, await asyncio.shield(project_wheels))
            bootstrap = NodeBootstrap(
                node.conn,
                target.text,
                facts,
                plan,
                self.settings,
                emit,
                lambda: self._wheelhouse_for(plan, facts),
            )
            env_python = await bootstrap.ensure()
            emit("start", f"worker with {cluster.worker.concurrency} {cluster.worker.executor} slot(s)")
            launch = functools.partial(self._start_worker, node, env_python, image, cluster, secret, lease)
            node.launch = launch
            port, dial = await self._open_worker(node)
            emit("ready", f"worker pid {node.pid}, port {port} there, tunnel {dial} here")
        except (ProvisionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # anything unforeseen still names the host
            raise ProvisionError(f"{target.text}: {type(exc).__name__}: {exc}") from exc
        node.info = NodeInfo(
            index=index,
            name=node.name,
            host=target.host,
            pid=node.pid or 0,
            concurrency=cluster.worker.concurrency,
            executor=cluster.worker.executor,
        )
        return StartedNode(info=node.info, port=port, dial=dial)

    async def _open_worker(self, node: _Node) -> tuple[int, str]:
        """Start the node's worker and its tunnel: a local forward listening on 127.0.0.1 only, to the
        worker's 127.0.0.1 port there. Returns that port and the address that reaches it here."""
        assert node.conn is not None and node.launch is not None
        port = await node.launch()
        node.listener = await node.conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)
        return port, f"127.0.0.1:{node.listener.get_port()}"

    async def _plan_for(
        self, image: Image, facts: NodeFacts, project_wheels: tuple[Wheel, ...]
    ) -> InstallPlan:
        async with self._plan_lock:  # nodes of one platform share one plan (and one wheelhouse)
            plan = self._plans.get(facts.python + facts.platform_key)
            if plan is None:
                plan = await asyncio.to_thread(make_plan, image, facts, project_wheels)
                self._plans[facts.python + facts.platform_key] = plan
            return plan

    async def _wheelhouse_for(self, plan: InstallPlan, facts: NodeFacts) -> list[Wheel]:
        """The wheels offline nodes of `plan` need: gathered (repacked, downloaded) once per pool and plan."""
        gathering = self._wheelhouses.get(plan.key)
        if gathering is None:
            pins, unresolved = plan.resolution.pins, plan.resolution.unresolved
            gathering = asyncio.ensure_future(asyncio.to_thread(offline_wheelhouse, pins, unresolved, facts))
            gathering.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unused
            self._wheelhouses[plan.key] = gathering
        return await asyncio.shield(gathering)  # one node's cancellation must not cancel it for the others

    async def _start_worker(
        self, node: _Node, env_python: str, image: Image, cluster: ClusterSpec, secret: bytes, lease: float
    ) -> int:
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
            nodes_on_machine=self._nodes_per_machine[(node.target.host, node.target.port)],
        )
        environment = {**image.env, "PYTHONUNBUFFERED": "1"}
        # A command that fails at once (no such interpreter) may have closed the channel already: its output,
        # read below, says why, which a BrokenPipeError would hide.
        with contextlib.suppress(BrokenPipeError, asyncssh.Error, OSError):
            process.stdin.write(json.dumps(environment) + "\n" + config.encode())
        # stdin stays open: its EOF (teardown, or the connection dropping) tells the worker its client is gone.
        if node.output is None:
            node.output = AgentOutput(node.name, self._provider.forward_output)
        output = node.output
        ready: Announcement | None = None
        timed_out = False
        try:
            async with asyncio.timeout(self._provider.start_timeout):
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
                state = f"did not start within {self._provider.start_timeout:.0f}s"
            else:
                state = f"exited with status {status}"
            raise ProvisionError(f"{node.target.text}: the worker of {node.name} {state}. Its output:\n{log}")
        node.pid = ready.pid
        node.pump = asyncio.create_task(self._pump(node, process), name=f"{node.name}-output")
        return ready.port

    async def _pump(self, node: _Node, process: asyncssh.SSHClientProcess[str]) -> None:
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

    def _emit(self, event: BootstrapEvent) -> None:
        if self._provider.progress is None:
            if not self._provider.quiet:
                print_event(event)
            return
        try:
            self._provider.progress(event)
        except Exception as exc:  # noqa: BLE001  (a broken progress display must not break the bootstrap)
            print(f"skyward: the progress callback raised {type(exc).__name__}: {exc}", file=sys.stderr)

    # --- Deployment protocol -------------------------------------------------------------------------------

    def link(self, index: int, secret: bytes) -> Link:
        """casty through this node's SSH local forward (`nodes[index].dial`)."""
        return casty_link(self.nodes[index], secret)

    def is_alive(self, index: int) -> bool:
        """Whether node `index`'s worker session is open: local state only, no round trip."""
        node = self._nodes.get(index)
        if node is None or node.exited or node.process is None or node.conn is None:
            return False
        return not node.conn.is_closed() and node.process.returncode is None

    def exit_info(self, index: int) -> WorkerExit | None:
        """How node `index`'s worker ended, told by its SSH session; ``None`` while it runs or once the
        connection is gone (then the machine may be gone too)."""
        node = self._nodes.get(index)
        if node is None or self._io.on_loop():
            return None
        return self._io.run(self._exit_info(node)).result(timeout=15)

    async def _exit_info(self, node: _Node) -> WorkerExit | None:
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

    def restart(self, index: int) -> StartedNode:
        """Start node `index`'s worker again over its existing SSH connection, as it was started first."""
        if self._io.on_loop():
            raise SkywardError("a node cannot be restarted from skyward's I/O thread")
        restarting = self._io.run(self._restart(self._nodes[index]))
        started = restarting.result(timeout=self._provider.start_timeout + 30)
        self.nodes[index] = started
        return started

    async def _restart(self, node: _Node) -> StartedNode:
        import asyncssh

        if self._closed or node.conn is None or node.conn.is_closed() or node.info is None:
            raise ProvisionError(f"{node.target.text}: cannot restart {node.name}: its connection is gone")
        if node.listener is not None:
            node.listener.close()
        if node.pump is not None:
            node.pump.cancel()
        node.exited = False
        try:
            port, dial = await self._open_worker(node)
        except (ProvisionError, asyncio.CancelledError):
            raise
        except (asyncssh.Error, OSError) as exc:
            raise ProvisionError(f"{node.target.text}: cannot restart {node.name}: {exc}") from exc
        node.info = replace(node.info, pid=node.pid or 0)
        return StartedNode(info=node.info, port=port, dial=dial)

    def close(self) -> None:
        """Stop every worker this deployment started and close its tunnels and connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._io.on_loop():  # cannot wait for the loop from the loop itself; let it run there
            self._io.loop.create_task(self._aclose())
            return
        try:
            self._io.run(self._aclose()).result(timeout=60)
        except (TimeoutError, OSError) as exc:  # the worker leases end whatever is left
            print(f"skyward: stopping the SSH nodes did not finish: {exc!r}", file=sys.stderr)

    async def _aclose(self) -> None:
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=10)
        nodes = list(self._nodes.values())
        if nodes:
            await asyncio.gather(*(self._stop(node) for node in nodes), return_exceptions=True)

    async def _stop(self, node: _Node) -> None:
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


def build_project_wheels() -> tuple[Wheel, ...]:
    """The wheels of skyward and of every installed skyward plugin, as this client has them."""
    return tuple(wheel_of_installed(dist) for dist in project_distributions())


def _check_python(facts: NodeFacts, image: Image, where: str) -> None:
    client = f"{sys.version_info.major}.{sys.version_info.minor}"
    if image.python and image.python not in (facts.python_minor, facts.python_version):
        raise ProvisionError(
            f"{where}: Image(python={image.python!r}) but {facts.python} there is Python {facts.python_version}"
        )
    if facts.implementation != "cpython" or facts.python_minor != client:
        raise ProvisionError(
            f"{where}: {facts.python} is {facts.implementation} {facts.python_version}, but this client runs CPython "
            f"{client}; functions travel as bytecode of the client's version, so nodes need the same minor version. "
            f"Pass SSH(python=...) naming a Python {client} on the nodes."
        )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group (concurrent node failures: the first says enough)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
