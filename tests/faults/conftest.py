"""Fixtures shared by the fault and fuzz tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import skyward as sky
from skyward.ioloop import shared_loop
from skyward.transport import NodeLink


@pytest.fixture(scope="module")
def live_node() -> Iterator[tuple[sky.ComputePool, NodeLink]]:
    """One local node, and a second authenticated link to it (the pool's own keeps serving the pool)."""
    with sky.ComputePool(nodes=1) as pool:
        started = pool._deployment.nodes[0]  # type: ignore[union-attr]
        link = NodeLink(started.info.name, started.port, started.dial, pool._secret)
        shared_loop().run(link.connect()).result(timeout=20)
        yield pool, link
        shared_loop().run(link.close()).result(timeout=10)
