"""`SSHDeployment`: the nodes of one `sky.SSH` pool, started together and stopped together.

For each host, concurrently: connect (`ssh_connect`), make sure the image's environment exists there
(`skyward.bootstrap.environments`), then start the worker and its tunnel (`ssh_node`). It also answers the pool's
`Deployment` questions (is a node alive, how did its worker end) and restarts or stops the workers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from skyward.bootstrap import progress
from skyward.bootstrap.environments import PoolEnvironments
from skyward.bootstrap.progress import BootstrapEvent, Phase, print_event
from skyward.bootstrap.remote import BootstrapSettings
from skyward.errors import ProvisionError, SkywardError
from skyward.image import Image
from skyward.ioloop import EventLoopThread
from skyward.link import Link
from skyward.progress_display import BootstrapDisplay
from skyward.providers.base import StartedNode, WorkerExit, casty_link
from skyward.providers.ssh_connect import HostSpec, connect
from skyward.providers.ssh_node import (
    SSHNode,
    open_worker,
    reopen_worker,
    start_worker,
    stop_node,
    worker_exit,
)
from skyward.spec import ClusterSpec

logger = logging.getLogger("skyward.ssh")

if TYPE_CHECKING:
    from skyward.providers.ssh import SSH


class SSHDeployment:
    """The nodes of one pool on SSH hosts: their connections, worker sessions and tunnels."""

    def __init__(self, provider: SSH, io: EventLoopThread) -> None:
        self._provider = provider
        self._io = io
        self._nodes: dict[int, SSHNode] = {}
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
        self._environments = PoolEnvironments(self.settings)
        # The default display (a live table in a terminal), unless the provider is quiet or has its own.
        self._display = BootstrapDisplay() if provider.progress is None and not provider.quiet else None

    async def start(
        self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float
    ) -> list[StartedNode]:
        self._start_task = asyncio.current_task()
        hosts = [HostSpec.parse(text) for text in self._provider.hosts[: cluster.nodes]]
        # A host listed n times runs n nodes, which share its CPUs (the worker sizes native thread pools by it).
        self._nodes_per_machine = Counter((host.host, host.port) for host in hosts)
        self._environments.build_project_wheels()  # while the nodes connect
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._start_node(index, target, cluster, image, secret, lease))
                    for index, target in enumerate(hosts)
                ]
        except BaseExceptionGroup as failures:
            raise _first(failures) from None
        finally:
            if self._display is not None:
                self._display.close()
        return [task.result() for task in tasks]

    async def _start_node(
        self,
        index: int,
        target: HostSpec,
        cluster: ClusterSpec,
        image: Image,
        secret: bytes,
        lease: float,
    ) -> StartedNode:
        node = SSHNode(index, target, f"{cluster.pool_id}-node-{index}")
        self._nodes[index] = node

        def emit(phase: Phase, message: str = "") -> None:
            _show(
                self._provider,
                BootstrapEvent(node.name, target.text, phase, message, time.monotonic() - node.started_at),
                self._display,
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
            env_python = await self._environments.ensure(node.conn, target.text, provider.python, image, emit)
            emit("start", f"worker with {cluster.worker.concurrency} {cluster.worker.executor} slot(s)")
            node.launch = functools.partial(
                start_worker,
                node,
                env_python,
                image,
                cluster,
                secret,
                lease,
                nodes_on_machine=self._nodes_per_machine[(target.host, target.port)],
                forward_output=provider.forward_output,
                start_timeout=provider.start_timeout,
            )
            port, dial = await open_worker(node)
            emit("ready", f"worker pid {node.pid}, port {port} there, tunnel {dial} here")
        except (ProvisionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # anything unforeseen still names the host
            raise ProvisionError(f"{target.text}: {type(exc).__name__}: {exc}") from exc
        return node.started(cluster, port, dial)

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
        return self._io.run(worker_exit(node)).result(timeout=15)

    def restart(self, index: int) -> StartedNode:
        """Start node `index`'s worker again over its existing SSH connection, as it was started first."""
        if self._io.on_loop():
            raise SkywardError("a node cannot be restarted from skyward's I/O thread")
        restarting = self._io.run(self._restart(self._nodes[index]))
        started = restarting.result(timeout=self._provider.start_timeout + 30)
        self.nodes[index] = started
        return started

    async def _restart(self, node: SSHNode) -> StartedNode:
        if self._closed or node.conn is None or node.conn.is_closed() or node.info is None:
            raise ProvisionError(f"{node.target.text}: cannot restart {node.name}: its connection is gone")
        port, dial = await reopen_worker(node)
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
            logger.warning("stopping the SSH nodes did not finish (their worker leases end them): %r", exc)

    async def _aclose(self) -> None:
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=10)
        nodes = list(self._nodes.values())
        if nodes:
            await asyncio.gather(*(stop_node(node) for node in nodes), return_exceptions=True)


def _show(provider: SSH, event: BootstrapEvent, display: BootstrapDisplay | None = None) -> None:
    """Report one bootstrap event: to `provider.progress`, else to the display unless `provider.quiet`."""
    logger.debug("%s", event)
    progress.publish(event)
    if provider.progress is None:
        if not provider.quiet:
            (display or print_event)(event)
        return
    try:
        provider.progress(event)
    except Exception as exc:  # noqa: BLE001  (a broken progress display must not break the bootstrap)
        logger.warning("the progress callback raised %s: %s", type(exc).__name__, exc)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group (concurrent node failures: the first says enough)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
