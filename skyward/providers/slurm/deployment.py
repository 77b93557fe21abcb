"""The agents of one pool inside its Slurm job: one ``srun`` step per node, each an agent on the node's address.

The steps overlap (``--overlap``) and ask for every CPU the job has on their node, so that CPU binding
plugins (task/affinity, cgroups) give the agent's slots the whole node."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skyward.agent_config import AgentConfig
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.link import Link
from skyward.providers.agent_session import AgentOutput, Announcement
from skyward.providers.base import NodeInfo, StartedNode, WorkerExit, casty_link
from skyward.providers.slurm.allocation import Allocation
from skyward.providers.slurm.shell import Process, Shell
from skyward.spec import ClusterSpec
from skyward.volumes import agent_entries

if TYPE_CHECKING:
    from skyward.providers.slurm.provider import Slurm


@dataclass(eq=False)
class _Agent:
    """One node's ``srun`` step: the process here, its output, and the agent's announcement."""

    process: Process
    output: AgentOutput
    ready: threading.Event = field(default_factory=threading.Event)
    announced: Announcement | None = None
    eof: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class _Launch:
    cluster: ClusterSpec
    image: Image
    secret: bytes
    lease: float


class SlurmDeployment:
    """A pool's Slurm job and the agents ``srun`` started in it. `close` cancels the job.

    About 160 lines, past the ~150 rule on purpose: it is the `Deployment` protocol (start, link, is_alive,
    exit_info, restart, close) over one job, and its methods share the agents' table and its lock.
    """

    def __init__(self, provider: Slurm, shell: Shell, allocation: Allocation) -> None:
        self._provider = provider
        self._shell = shell
        self.allocation = allocation
        self._agents: dict[int, _Agent] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._launch: _Launch | None = None
        self.python = provider.python or sys.executable  # the interpreter srun runs (launch may set another)
        self.hosts: list[str] = []  # node index -> Slurm node name
        self.addresses: dict[str, str] = {}
        self.nodes: list[StartedNode] = []

    @property
    def job_id(self) -> str | None:
        return self.allocation.job_id

    def start(
        self, hosts: Sequence[str], cluster: ClusterSpec, image: Image, secret: bytes, lease: float
    ) -> None:
        """Start an agent on each of `hosts` (the job's nodes, in order), all at once."""
        self.hosts = list(hosts)
        self.addresses = self.allocation.node_addresses(self.hosts)
        self._launch = _Launch(cluster, image, secret, lease)
        with ThreadPoolExecutor(max(1, len(self.hosts))) as starter:
            self.nodes = list(starter.map(self._start_agent, range(len(self.hosts))))

    def _srun_argv(self, host: str) -> list[str]:
        provider, launch = self._provider, self._launch
        assert launch is not None and self.job_id is not None
        return [
            "srun",
            f"--jobid={self.job_id}",
            "--overlap",  # steps share the allocation's CPUs: a restarted agent need not wait for the old one
            "--nodes=1",
            "--ntasks=1",
            f"--nodelist={host}",
            f"--cpus-per-task={provider.cpus_per_node(launch.cluster)}",
            f"--job-name=skyward-{launch.cluster.pool_id}",
            "--kill-on-bad-exit=0",
            self.python,
            "-I",
            "-u",
            "-m",
            "skyward.providers.slurm.node_launch",
        ]

    def _start_agent(self, index: int) -> StartedNode:
        launch = self._launch
        assert launch is not None
        host = self.hosts[index]
        name = f"{launch.cluster.pool_id}-node-{index}"
        try:
            process = self._shell.spawn(self._srun_argv(host), stdin=True)
        except FileNotFoundError as exc:
            raise ProvisionError(f"cannot run srun: {exc}") from None
        agent = _Agent(process, AgentOutput(name, self._provider.forward_output))
        with self._lock:
            closed = self._closed
            if not closed:
                self._agents[index] = agent
        if closed:
            _stop(agent)
            raise ProvisionError(f"{name} on {host} was not started: its pool is closing")
        threading.Thread(target=_pump, args=(agent,), daemon=True, name=f"{name}-output").start()
        settings = {"env": {**launch.image.env, "PYTHONUNBUFFERED": "1"}}
        config = AgentConfig.for_node(  # this node's TLS key and certificate; not the secret
            launch.secret,
            name,
            concurrency=launch.cluster.worker.concurrency,
            executor=launch.cluster.worker.executor,
            lease=launch.lease,
            nodes_on_machine=1,  # one agent per node: the job's nodes are distinct machines
            bind=self.addresses[host],  # the node's NodeAddr: the client (or the login node) dials it there
            volumes=agent_entries(launch.cluster.volumes),  # mounted by the agent (credentials on stdin)
        )
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(settings) + "\n" + config.encode())
            process.stdin.flush()  # stdin stays open: its EOF tells the agent that the client is gone
        except OSError:
            pass  # srun failed at once: its output, read below, says why
        agent.ready.wait(self._provider.agent_timeout)
        announced = agent.announced
        if announced is None:
            _stop(agent)
            agent.eof.wait(2)
            raise ProvisionError(
                f"slurm job {self.job_id}: the agent of {name} on {host} did not start within "
                f"{self._provider.agent_timeout:.0f}s (srun exit status {process.poll()}). Its output:\n"
                f"{agent.output.log()}"
            )
        info = NodeInfo(
            index=index,
            name=name,
            host=host,
            pid=announced.pid,
            concurrency=launch.cluster.worker.concurrency,
            executor=launch.cluster.worker.executor,
            threads=announced.threads,
        )
        dial = self._shell.reach(self.addresses[host], announced.port)
        return StartedNode(info=info, port=announced.port, dial=dial)

    # --- Deployment protocol -------------------------------------------------------------------------------

    def link(self, index: int, secret: bytes) -> Link:
        """casty to the node's agent at its ``NodeAddr`` (or a login forward to it), mutual TLS."""
        return casty_link(self.nodes[index], secret)

    def is_alive(self, index: int) -> bool:
        agent = self._agents.get(index)
        return agent is not None and agent.process.poll() is None

    def exit_info(self, index: int) -> WorkerExit | None:
        """How node `index`'s agent ended; ``None`` while it runs, or when its node is lost (DOWN, drained,
        failed) or the job is over: a restart there cannot work, so the node is given up. Raises
        `ProvisionError` saying so when the login connection dropped."""
        lost = self._shell.lost()
        if lost is not None:  # a clear reason beats "unreachable": raised, it joins the node's reason
            raise ProvisionError(
                f"{lost}; with it ended the job's salloc on the login node, which gives slurm job "
                f"{self.job_id} back (no node of it can be reached or restarted)"
            )
        agent = self._agents.get(index)
        if agent is None:
            return None
        try:
            returncode = agent.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        if self.allocation.node_lost(self.hosts[index]):
            return None
        agent.eof.wait(1)
        return agent.output.exit(returncode)

    def restart(self, index: int) -> StartedNode:
        """Start node `index`'s agent again: a new ``srun`` step on the same node of the same job."""
        with self._lock:
            old = self._agents.pop(index, None)
        if old is not None:
            _stop(old)
        started = self._start_agent(index)
        self.nodes[index] = started
        return started

    def close(self) -> None:
        """Close every agent's stdin (they exit), then ``scancel`` the job. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            agents = list(self._agents.values())
        for agent in agents:
            _close_stdin(agent.process)
        for agent in agents:
            try:
                agent.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.allocation.cancel()  # ends whatever steps are left, and frees the nodes
        for agent in agents:
            _stop(agent)
        self._shell.close()


def _pump(agent: _Agent) -> None:
    """Read what the step prints: the agent's ready line, then what tasks print (forwarded, prefixed)."""
    assert agent.process.stdout is not None
    for raw in agent.process.stdout:
        line = raw.rstrip("\n")
        announced = agent.output.feed(line, expect_ready=not agent.ready.is_set())
        if announced is not None:
            agent.announced = announced
            agent.ready.set()
    agent.ready.set()
    agent.eof.set()


def _close_stdin(process: Process) -> None:
    try:
        if process.stdin is not None and not process.stdin.closed:
            process.stdin.close()
    except OSError:
        pass


def _stop(agent: _Agent) -> None:
    """End one ``srun``: EOF first (its agent exits), then SIGTERM, which makes srun end its step."""
    process = agent.process
    _close_stdin(process)
    for ending in (None, process.terminate, process.kill):
        if ending is not None:
            ending()
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue
