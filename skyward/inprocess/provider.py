"""`InProcess`: a provider whose nodes are real node agents inside this process, reached by in-process links.

The pool, its scheduler, the wire encoding and the agent's `TaskRunner` and slots are the real ones; what is
left out is processes and sockets. Tests whose subject is scheduling use it (no start-up, no sleeps waiting
for processes), and ``benchmarks/simulate.py`` drives a thousand simulated nodes with it. It is not a `sky.*`
name: import it from `skyward.inprocess`.

Where a task ran is told by its thread: thread slots of node ``<pool>-node-3`` are named
``<pool>-node-3/slot_N`` (`current_node`). ``SKYWARD_NODE`` is not set (the environment is this process's,
shared by every node).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skyward.blobs import BlobStore
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.inprocess.host import NodeHost
from skyward.inprocess.link import InProcessLink, InProcessNode
from skyward.link import Link
from skyward.providers.base import NodeInfo, StartedNode, WorkerExit
from skyward.spec import ClusterSpec
from skyward.worker.agent import TaskRunner
from skyward.worker.slots import Slots, make_slots

#: Makes a node's slots: ``(node name, concurrency, its blob store) -> Slots``.
SlotsFactory = Callable[[str, int, BlobStore], Slots]


def current_node() -> str | None:
    """Inside a task on an in-process node's thread slot: that node's name (``None`` elsewhere)."""
    name = threading.current_thread().name
    return name.rpartition("/slot")[0] or None


@dataclass(frozen=True)
class InProcess:
    """Run each node as a node agent in this process (see the module docstring).

    Attributes:
        latency: seconds each message takes, each way (``0``: as soon as the node's loop gets to it).
        slots: makes each node's slots; ``None``: the real ones of the pool's `sky.Worker` (thread slots named
            after their node, or process slots).
        reply_cache_bytes: each agent's reply cache (`TaskRunner`).
        launched: the deployments it started, latest last: where a test or the simulation reaches its nodes
            (`InProcessDeployment.lose`, `crash`, `node_cpu_seconds`).
    """

    latency: float = 0.0
    slots: SlotsFactory | None = None
    reply_cache_bytes: int = 64 * 1024 * 1024
    launched: list[InProcessDeployment] = field(default_factory=list, compare=False, repr=False)
    name: str = field(default="in-process", init=False)
    shares_client_files: bool = field(default=True, init=False)

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> InProcessDeployment:
        if image.env:
            raise ProvisionError(
                f"in-process nodes share this process's environment: Image(env=...) cannot be set for them "
                f"({', '.join(sorted(image.env))})"
            )
        from skyward.providers.local import check_image  # this interpreter, as Local's nodes

        check_image(image)
        deployment = InProcessDeployment(self, cluster)
        self.launched.append(deployment)
        return deployment


class InProcessDeployment:
    """The in-process nodes of one pool, on one `NodeHost` thread.

    Besides the `skyward.providers.base.Deployment` protocol, `lose`, `freeze` and `crash` take a node down as
    a lost machine, a frozen host or a crashed agent would (for tests and the simulation), and
    `node_cpu_seconds` tells how much CPU the nodes' own work used.
    """

    def __init__(self, provider: InProcess, cluster: ClusterSpec) -> None:
        self._provider = provider
        self._cluster = cluster
        self.host = NodeHost()
        self._served: list[InProcessNode] = []
        self._gone: set[int] = set()  # lost with their "machine": never restarted
        self._closed = False
        self.nodes: list[StartedNode] = []
        for index in range(cluster.nodes):
            started, node = self._start(index)
            self.nodes.append(started)
            self._served.append(node)

    def _start(self, index: int) -> tuple[StartedNode, InProcessNode]:
        worker = self._cluster.worker
        name = f"{self._cluster.pool_id}-node-{index}"
        store = BlobStore()
        if self._provider.slots is not None:
            slots = self._provider.slots(name, worker.concurrency, store)
        else:
            slots = make_slots(worker.executor, worker.concurrency, store, thread_name=f"{name}/slot")
        runner = TaskRunner(slots, store, self._provider.reply_cache_bytes)
        node = InProcessNode(name, runner, slots, self.host, self._provider.latency)
        info = NodeInfo(index, name, "in-process", os.getpid(), worker.concurrency, worker.executor)
        return StartedNode(info, port=0, dial=f"in-process:{name}"), node

    # --- the Deployment protocol ----------------------------------------------------------------------------

    def is_alive(self, index: int) -> bool:
        return self._served[index].alive

    def exit_info(self, index: int) -> WorkerExit | None:
        node = self._served[index]
        return None if node.alive or index in self._gone else node.exit

    def restart(self, index: int) -> StartedNode:
        if self._closed or index in self._gone:
            raise ProvisionError(
                f"in-process node {self.nodes[index].info.name} cannot be restarted: it is gone"
            )
        self._served[index].stop()
        started, node = self._start(index)
        self.nodes[index], self._served[index] = started, node
        return started

    def link(self, index: int, secret: bytes) -> Link:
        """An in-process link to node `index` as it runs now (no secret is needed: nothing leaves the
        process)."""
        return InProcessLink(self._served[index])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        nodes = list(self._served)

        def stop_all() -> None:
            for node in nodes:
                node.down_here("its pool is closing")

        if not self.host.loop.is_closed():
            self.host.call(stop_all)
        self.host.close()

    # --- for tests and the simulation -----------------------------------------------------------------------

    def lose(self, index: int, reason: str = "its machine is gone") -> None:
        """Take node `index` down for good, as a machine that vanished: asks in flight fail, no restart."""
        self._gone.add(index)
        node = self._served[index]
        self.host.call(lambda: node.down_here(reason))

    def freeze(self, index: int) -> None:
        """Node `index` stops answering anything, while it looks alive to its provider (a frozen host): only
        the pool's heartbeats can tell."""
        node = self._served[index]
        self.host.call(lambda: setattr(node, "frozen", True))

    def crash(self, index: int, exit_code: int = 1, output: tuple[str, ...] = ()) -> None:
        """Take node `index`'s agent down as a crash would (its "machine" stays): the pool may restart it."""
        node = self._served[index]
        self.host.call(lambda: node.down_here("its agent exited", WorkerExit(exit_code, None, output)))

    def node_cpu_seconds(self) -> float:
        """CPU time of the nodes' thread so far (agents, virtual slots, the nodes' side of the links)."""
        return self.host.cpu_seconds()


if TYPE_CHECKING:
    from skyward.providers.base import Deployment, Provider

    def _conforms(provider: InProcess, deployment: InProcessDeployment) -> tuple[Provider, Deployment]:
        """Checked by mypy, never run: the in-process provider and deployment satisfy the protocols."""
        return provider, deployment
