"""The provider protocol: the one seam between a pool and the machines it runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from skyward.image import Image
from skyward.link import Link
from skyward.spec import ClusterSpec


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node of a pool, as `pool.nodes` shows it.

    Attributes:
        index: position in the pool (0-based); broadcast results come back in this order.
        name: the node's name (``<pool id>-node-<index>``), also ``SKYWARD_NODE`` inside tasks.
        host: the machine it runs on.
        pid: the worker agent's process id on that machine.
        concurrency: its slots.
        executor: ``"thread"`` or ``"process"``.
        threads: its slots' native thread limit (``OMP_NUM_THREADS`` there), when its agent said.
    """

    index: int
    name: str
    host: str
    pid: int
    concurrency: int
    executor: str
    threads: str | None = None


@dataclass(frozen=True, slots=True)
class StartedNode:
    """A node agent that is up: who it is, the port it listens on there, and the address that reaches it here."""

    info: NodeInfo
    port: int
    dial: str


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """How a node's worker process ended while its machine stayed reachable.

    Attributes:
        exit_code: its exit status, or ``None`` when a signal killed it.
        signal: the signal that killed it, or ``None``.
        output: the last lines it wrote (stdout and stderr), oldest first.
    """

    exit_code: int | None
    signal: int | None
    output: tuple[str, ...] = ()

    @classmethod
    def from_returncode(cls, returncode: int, output: tuple[str, ...] = ()) -> WorkerExit:
        """From a `subprocess`-style return code: negative for the signal that killed the process."""
        if returncode < 0:
            return cls(None, -returncode, output)
        return cls(returncode, None, output)


def casty_link(node: StartedNode, secret: bytes) -> Link:
    """The casty link (`skyward.transport.NodeLink`) to a node agent listening on `node.port`, dialled at
    `node.dial`: what `Deployment.link` answers for nodes started with ``python -m skyward.worker``."""
    from skyward.transport import NodeLink  # casty loads when a pool connects, not with the provider

    return NodeLink(node.info.name, node.port, node.dial, secret)


#: Lines of a worker's output kept for the message of `skyward.errors.WorkerCrashed`.
OUTPUT_TAIL_LINES = 20


class Deployment(Protocol):
    """The nodes one pool started. `close` stops all of them and is safe to call more than once.

    `is_alive` is called on skyward's I/O loop and must answer from local state; `link` makes an object and
    nothing more; the other methods may block and are called from other threads.
    """

    nodes: list[StartedNode]

    def link(self, index: int, secret: bytes) -> Link:
        """A new, not yet connected `skyward.link.Link` to node `index` as it runs now (`nodes[index]`).

        The pool connects it at entry and after each restart. Nodes that run the agent (``python -m
        skyward.worker``) are reached with `casty_link`; `secret` is the pool's, from which that link derives
        the client's certificate (it sends nothing of it).
        """
        ...

    def is_alive(self, index: int) -> bool: ...

    def exit_info(self, index: int) -> WorkerExit | None:
        """How node `index`'s worker process ended, once it has (waiting a moment for its last output).

        ``None`` while it runs, or when its machine cannot be reached to tell (a cut link, a machine that is
        gone): the node is then lost, not restarted.
        """
        ...

    def restart(self, index: int) -> StartedNode:
        """Start node `index`'s worker again on the same machine, as it was started first.

        `nodes[index]` becomes the returned node. Raises `skyward.errors.ProvisionError` when it cannot (e.g.
        the machine is gone).
        """
        ...

    def close(self) -> None: ...


class Provider(Protocol):
    """Configuration of where nodes run; `launch` starts them for one pool.

    `shares_client_files` is True when nodes see this machine's files (the Local provider): the user's own
    modules are then imported there as here. Otherwise they travel by value (`skyward.code_shipping`).
    """

    # Read-only properties, so that frozen dataclasses (whose fields cannot be set) satisfy the protocol.
    @property
    def name(self) -> str:
        """A short name for messages and `ClusterSpec.provider` (``"local"``, ``"ssh"``, ``"aws"``)."""
        ...

    @property
    def shares_client_files(self) -> bool:
        """True when nodes see this machine's files, so user modules need not travel by value."""
        ...

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> Deployment:
        """Start `cluster.nodes` agents with `image`, handing each its own credentials made from the pool's `secret`.

        `skyward.agent_config.AgentConfig.for_node(secret, node_name, ...).encode()` is the agent's configuration
        line on stdin (never on a command line); the secret itself stays on the client.

        Raises `skyward.errors.ProvisionError` with a clear message when it cannot; whatever it had started by
        then is stopped first.
        """
        ...
