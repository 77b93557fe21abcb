"""An example provider: wraps another provider, caps the pool size, and records each launch.

A provider is configuration (a frozen dataclass) with a `name`, a `shares_client_files` flag and a `launch`
method that returns a `Deployment`: the nodes it started, and how to check, restart and stop them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import skyward as sky
from skyward.image import Image
from skyward.providers import Deployment, Provider
from skyward.spec import ClusterSpec


# --8<-- [start:provider]
@dataclass(frozen=True)
class Capped:
    """Start nodes with `inner`, refusing pools of more than `max_nodes` nodes."""

    inner: Provider = field(default_factory=sky.Local)
    max_nodes: int = 4
    launches: list[str] = field(default_factory=list, compare=False)  # pool ids, for an audit trail

    @property
    def name(self) -> str:
        return f"capped-{self.inner.name}"

    @property
    def shares_client_files(self) -> bool:
        # The nodes are the inner provider's: they see this machine's files exactly when its nodes do.
        return self.inner.shares_client_files

    def launch(self, cluster: ClusterSpec, image: Image, secret: bytes, lease: float) -> Deployment:
        if cluster.nodes > self.max_nodes:
            raise sky.ProvisionError(f"{cluster.nodes} nodes asked, at most {self.max_nodes} allowed")
        self.launches.append(cluster.pool_id)
        return self.inner.launch(cluster, image, secret, lease)


# --8<-- [end:provider]


if __name__ == "__main__":
    import os

    # --8<-- [start:usage]
    provider = Capped(max_nodes=2)
    with sky.ComputePool(provider=provider, nodes=2) as pool:
        print("worker pids:", pool.broadcast(os.getpid), "launches:", provider.launches)
    # --8<-- [end:usage]
