"""`sky.Local()`: the embedded default. Every node is a worker process on this machine.

Nothing is installed: the nodes run this interpreter with this `sys.path`, so they see exactly the client's
packages. The path from client to node is the same as for remote nodes (casty over TCP on 127.0.0.1), minus
SSH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import IO

from packaging.requirements import InvalidRequirement, Requirement

from skyward.agent_config import AgentConfig
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.link import Link
from skyward.providers.agent_session import AgentOutput, Announcement
from skyward.providers.base import NodeInfo, StartedNode, WorkerExit, casty_link
from skyward.spec import ClusterSpec
from skyward.volumes import agent_entries

# The agent runs isolated (-I: no working directory or user site on sys.path, no PYTHON* variables), so that a
# json.py where the client happens to run cannot shadow the stdlib in the worker. The node must still import what
# the client imports (user modules pickled by reference): the client's sys.path comes as an argument, after the
# worker's own entries (stdlib and site-packages first), rather than in PYTHONPATH, which tasks' subprocesses
# would inherit.
_LAUNCHER = (
    "import json,runpy,sys\n"
    "sys.path+=[p for p in json.loads(sys.argv[1]) if p not in sys.path]\n"
    "runpy.run_module('skyward.worker',run_name='__main__',alter_sys=True)\n"
)


@dataclass(frozen=True)
class Local:
    """Run each node as a worker process on this machine.

    Attributes:
        start_timeout: seconds a worker may take to start listening.
        forward_output: print what tasks print, prefixed with the node's name.
        quiet: show no progress (the automatic bar of a long ``pool.map`` or joblib call in a terminal).
    """

    start_timeout: float = 60.0
    forward_output: bool = True
    quiet: bool = False
    name: str = field(default="local", init=False)
    shares_client_files: bool = field(default=True, init=False)

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> LocalDeployment:
        check_image(image)
        deployment = LocalDeployment(self)
        try:
            with ThreadPoolExecutor(max(1, cluster.nodes)) as starter:
                nodes = list(
                    starter.map(
                        lambda index: deployment.start_node(index, cluster, image, secret, lease),
                        range(cluster.nodes),
                    )
                )
        except BaseException:
            deployment.close()
            raise
        deployment.nodes = nodes
        return deployment


def check_image(image: Image) -> None:
    """Local installs nothing: every requirement of the image must already hold here."""
    client_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if image.python and image.python != client_python and not client_python.startswith(image.python + "."):
        raise ProvisionError(
            f"Image(python={image.python!r}) but Local nodes run this interpreter, Python {client_python}"
        )
    problems = []
    for spec in image.pip:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            problems.append(f"{spec!r} (not a valid requirement: {exc})")
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{spec!r} (not installed)")
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{spec!r} (installed: {installed})")
    missing_apt = [pkg for pkg in image.apt if not _dpkg_installed(pkg)]
    problems += [f"apt package {pkg!r} (not installed)" for pkg in missing_apt]
    if problems:
        raise ProvisionError(
            "the Local provider installs nothing, and this environment lacks what the image asks for: "
            + "; ".join(problems)
            + ". Install them here (e.g. `uv add` / `uv pip install`), or use a remote provider."
        )


def _client_path() -> list[str]:
    """The client's import path, absolute (``""`` is the working directory)."""
    return [os.path.abspath(p or os.curdir) for p in sys.path]


def _dpkg_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in result.stdout


@dataclass(eq=False)
class _Process:
    popen: subprocess.Popen[bytes]
    output: AgentOutput
    ready: threading.Event = field(default_factory=threading.Event)
    announced: Announcement | None = None
    eof: threading.Event = field(default_factory=threading.Event)  # all of its output is read


class LocalDeployment:
    def __init__(self, provider: Local) -> None:
        self._provider = provider
        self._processes: dict[int, _Process] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._start_args: dict[int, tuple[ClusterSpec, Image, bytes, float]] = {}
        self.nodes: list[StartedNode] = []

    def start_node(
        self, index: int, cluster: ClusterSpec, image: Image, secret: bytes, lease: float
    ) -> StartedNode:
        name = f"{cluster.pool_id}-node-{index}"
        self._start_args[index] = (cluster, image, secret, lease)  # a restart starts it again the same way
        env = {**os.environ, **image.env}
        popen = subprocess.Popen(
            [sys.executable, "-I", "-u", "-c", _LAUNCHER, json.dumps(_client_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: teardown reaches process slots too
        )
        process = _Process(popen, AgentOutput(name, self._provider.forward_output))
        with self._lock:
            closed = self._closed
            if not closed:
                self._processes[index] = process
        if closed:  # closed while a restart was starting it
            self._stop(process)
            raise ProvisionError(f"local node {name} was not started: its pool is closing")
        config = AgentConfig.for_node(  # this node's TLS key and certificate; not the secret
            secret,
            name,
            concurrency=cluster.worker.concurrency,
            executor=cluster.worker.executor,
            lease=lease,
            nodes_on_machine=cluster.nodes,  # they share this machine's CPUs
            volumes=agent_entries(cluster.volumes),  # mounted by the agent (credentials on stdin)
        )
        assert popen.stdin is not None and popen.stdout is not None
        popen.stdin.write(config.encode().encode())
        popen.stdin.flush()  # stdin stays open: its EOF tells the agent that the client is gone
        threading.Thread(
            target=self._pump, args=(name, process, popen.stdout), daemon=True, name=f"{name}-output"
        ).start()
        process.ready.wait(self._provider.start_timeout)
        announced = process.announced
        if announced is None:
            self._stop(process)
            log = process.output.log()
            raise ProvisionError(
                f"local node {name} did not start within {self._provider.start_timeout:.0f}s "
                f"(exit code {popen.poll()}). Its output:\n{log}"
            )
        info = NodeInfo(
            index=index,
            name=name,
            host="localhost",
            pid=announced.pid,
            concurrency=cluster.worker.concurrency,
            executor=cluster.worker.executor,
            threads=announced.threads,
        )
        port = announced.port
        return StartedNode(info=info, port=port, dial=f"127.0.0.1:{port}")

    def _pump(self, name: str, process: _Process, stream: IO[bytes]) -> None:
        """Read the agent's output: the ready line, then what tasks print (forwarded, prefixed)."""
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            announced = process.output.feed(line, expect_ready=not process.ready.is_set())
            if announced is not None:
                process.announced = announced
                process.ready.set()
        process.ready.set()  # EOF: the agent exited; wake a waiting start_node
        process.eof.set()

    def link(self, index: int, secret: bytes) -> Link:
        return casty_link(self.nodes[index], secret)

    def is_alive(self, index: int) -> bool:
        process = self._processes.get(index)
        return process is not None and process.popen.poll() is None

    def exit_info(self, index: int) -> WorkerExit | None:
        """How node `index`'s agent ended; ``None`` while it runs (its machine, this one, cannot be gone)."""
        process = self._processes.get(index)
        if process is None:
            return None
        try:
            # A dropped connection can be seen a moment before the process is reaped.
            returncode = process.popen.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        process.eof.wait(1)  # its last lines (process slots it left may hold the pipe open: not forever)
        return process.output.exit(returncode)

    def restart(self, index: int) -> StartedNode:
        """Start node `index` again: a new agent process, the same configuration. Its remains go first."""
        with self._lock:
            old = self._processes.pop(index, None)
        if old is not None:
            self._stop(old)  # process slots the dead agent left behind go with its process group
        started = self.start_node(index, *self._start_args[index])
        self.nodes[index] = started
        return started

    def close(self) -> None:
        with self._lock:
            self._closed = True
            processes = list(self._processes.values())
            self._processes.clear()
        for process in processes:  # EOF on stdin first: every agent starts exiting at once
            _close_stdin(process.popen)
        exited_by = time.monotonic() + _EXIT_WAIT  # one wait for them all, not one after another
        for process in processes:
            _end(process, exited_by)
        _drain(processes, time.monotonic() + _DRAIN_WAIT)

    @staticmethod
    def _stop(process: _Process) -> None:
        _close_stdin(process.popen)
        _end(process, time.monotonic() + _EXIT_WAIT)
        _drain([process], time.monotonic() + _DRAIN_WAIT)


# Seconds an agent gets to exit after its stdin closes before its process group is killed, and then for what its
# tasks printed to be read: all nodes of a pool share each bound (a stray process of a task, started in a
# session of its own, can hold a node's pipe open long after).
_EXIT_WAIT = 3.0
_DRAIN_WAIT = 2.0


def _end(process: _Process, deadline: float) -> None:
    """Wait for the agent until `deadline`, then kill whatever is left of its process group (process slots, a
    hung agent)."""
    popen = process.popen
    try:
        popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    popen.wait()


def _drain(processes: list[_Process], deadline: float) -> None:
    """What their tasks printed is printed before the pool's block ends, not after (or never): wait until
    `deadline` for the pumps to reach the end of every pipe."""
    for process in processes:
        process.eof.wait(max(0.0, deadline - time.monotonic()))


def _close_stdin(popen: subprocess.Popen[bytes]) -> None:
    try:
        if popen.stdin is not None and not popen.stdin.closed:
            popen.stdin.close()
    except OSError:
        pass
