"""The node agent's launch configuration: one dataclass and its codec, shared by every provider and the agent.

A provider starts ``python -m skyward.worker`` and writes `AgentConfig.encode` as the first line of its stdin;
the agent reads it back with `AgentConfig.decode`. The line carries this node's own TLS certificate and
key and the client CA's certificate (`skyward.credentials.node_material`), never the pool's secret; it
travels on stdin, never on a command line (where ``ps`` shows it) nor in a file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from skyward.credentials import TLSMaterial, node_material
from skyward.spec import ExecutorKind

#: Bumped when a field changes meaning; the agent refuses a line of another version (client and node differ).
VERSION = 1


class AgentConfigError(ValueError):
    """A configuration line the agent cannot use."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What one agent needs to start.

    Attributes:
        node: the node's name (its certificate's name, and ``SKYWARD_NODE`` for tasks).
        tls: this node's certificate and key and the client CA's certificate.
        concurrency: slots (tasks run at once).
        executor: ``"thread"`` or ``"process"`` slots.
        lease: seconds without a message from the client after which the agent exits.
        nodes_on_machine: nodes sharing this machine's CPUs; sizes native thread pools.
        reply_cache_bytes: the reply cache's size (``None``: the agent's default).
        blob_cache_bytes: the blob store's size (``None``: the agent's default).
        bind: the address the agent listens on. ``127.0.0.1`` (the default) on every provider that reaches it
            through a local process or an SSH forward; a Slurm node's own address (``NodeAddr``) where the
            client, or the login node, dials it over the cluster network. Mutual TLS guards either.
        volumes: the volumes to mount before announcing itself, as `skyward.volumes.agent_entries` makes them
            (with the client's S3 credentials where a volume forwards them: left out of the repr).
    """

    node: str
    tls: TLSMaterial
    concurrency: int = 1
    executor: ExecutorKind = "thread"
    lease: float = 60.0
    nodes_on_machine: int = 1
    reply_cache_bytes: int | None = None
    blob_cache_bytes: int | None = None
    bind: str = "127.0.0.1"
    volumes: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @classmethod
    def for_node(cls, secret: bytes, node: str, **fields: Any) -> AgentConfig:
        """The configuration of node `node` of the pool whose secret is `secret` (TLS material derived here)."""
        return cls(node=node, tls=node_material(secret, node), **fields)

    def encode(self) -> str:
        """The JSON line (newline included) to write to the agent's stdin."""
        fields = asdict(self)
        tls = fields.pop("tls")
        line = {"version": VERSION, "tls_cert": tls["cert"], "tls_key": tls["key"], "tls_ca": tls["ca"]}
        line.update(fields)
        return json.dumps(line) + "\n"

    @classmethod
    def decode(cls, line: str) -> AgentConfig:
        """Inverse of `encode`, on the node. Raises `AgentConfigError` naming a missing or unusable field."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AgentConfigError(f"the agent configuration is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise AgentConfigError("the agent configuration is not a JSON object")
        if data.get("version") != VERSION:
            raise AgentConfigError(
                f"the agent configuration has version {data.get('version')!r}, this agent reads {VERSION}: "
                "client and node versions of skyward differ"
            )
        try:
            tls = TLSMaterial(str(data["tls_cert"]), str(data["tls_key"]), str(data["tls_ca"]))
            node = str(data["node"])
        except KeyError as exc:
            raise AgentConfigError(
                f"the agent configuration lacks {exc.args[0]!r}: client and node versions differ"
            ) from exc
        try:
            return cls(
                node=node,
                tls=tls,
                concurrency=int(data.get("concurrency", 1)),
                executor=_executor(data.get("executor", "thread")),
                lease=float(data.get("lease", 60.0)),
                nodes_on_machine=int(data.get("nodes_on_machine", 1)),
                reply_cache_bytes=_optional_int(data.get("reply_cache_bytes")),
                blob_cache_bytes=_optional_int(data.get("blob_cache_bytes")),
                bind=_address(data.get("bind", "127.0.0.1")),
                volumes=_volumes(data.get("volumes", [])),
            )
        except (TypeError, ValueError) as exc:
            raise AgentConfigError(f"the agent configuration has an unusable field: {exc}") from exc


def _executor(value: object) -> ExecutorKind:
    if value == "thread" or value == "process":
        return value
    raise ValueError(f"executor must be 'thread' or 'process', got {value!r}")


def _address(value: object) -> str:
    if isinstance(value, str) and value and value.isprintable() and not value.isspace():
        return value
    raise ValueError(f"bind must be a host name or address, got {value!r}")


def _volumes(value: object) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ValueError(f"volumes must be a list of objects, got {type(value).__name__}")
    return tuple(value)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
