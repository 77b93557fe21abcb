"""The provider protocol: the one seam between a pool and the machines it runs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from skyward.image import Image
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
    """

    index: int
    name: str
    host: str
    pid: int
    concurrency: int
    executor: str


@dataclass(frozen=True, slots=True)
class StartedNode:
    """A node agent that is up: who it is, the port it listens on there, and the address that reaches it here."""

    info: NodeInfo
    port: int
    dial: str


class Deployment(Protocol):
    """The nodes one pool started. `close` stops all of them and is safe to call more than once."""

    nodes: list[StartedNode]

    def is_alive(self, index: int) -> bool: ...

    def close(self) -> None: ...


class Provider(Protocol):
    """Configuration of where nodes run; `launch` starts them for one pool.

    `shares_client_files` is True when nodes see this machine's files (the Local provider): the user's own
    modules are then imported there as here. Otherwise they travel by value (`skyward.code_shipping`).
    """

    name: str
    shares_client_files: bool

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> Deployment:
        """Start `cluster.nodes` agents with `image`, handing each its own credentials made from the pool's `secret`.

        `skyward.credentials.agent_config(secret, node_name)` gives the fields for the agent's configuration line on
        stdin (never on a command line); the secret itself stays on the client.

        Raises `skyward.errors.ProvisionError` with a clear message when it cannot; whatever it had started by
        then is stopped first.
        """
        ...
