"""Only the pool's client gets past a node's handshake: an outsider cannot make a node unpickle anything."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from attackers import message, outsider

import skyward as sky
from skyward import transport
from skyward.certificates import node_ca
from skyward.ioloop import shared_loop
from skyward.payload import encode_task


class MakeDirOnUnpickle:
    """Unpickling this object creates a directory: proof that a payload was (or was not) unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


@pytest.fixture
def node() -> Iterator[tuple[sky.ComputePool, object]]:
    with sky.ComputePool(nodes=1) as pool:
        assert pool._deployment is not None
        yield pool, pool._deployment.nodes[0]


@pytest.mark.parametrize("tls", ["plain", "foreign-cert"])
def test_an_outsider_cannot_make_a_node_unpickle_anything(node, tls: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    marker = tmp_path / "unpickled"
    payload = encode_task(print, (MakeDirOnUnpickle(str(marker)),), {}).payload
    advertise = transport.advertised_address(started.info.name, started.port)
    # The node's CA certificate is public: with it the outsider accepts the real node, so only the node can refuse.
    ca = node_ca(pool._secret, started.info.name)

    async def attack() -> object:
        async with outsider(started.port, started.info.name, tls, ca) as client:
            if client is None:
                return "refused at the door"
            ref = client.ref(transport.task_executor, transport._ACTOR_KEY, at=advertise)
            try:
                async with asyncio.timeout(20):
                    return await ref.ask(message("RunTask", task_id="outsider-1", payload=payload, blobs=()))
            except Exception as exc:  # noqa: BLE001 - a refusal, whatever form it takes
                return exc

    answer = shared_loop().run(attack()).result(60)
    assert answer == "refused at the door", answer
    assert not marker.exists()

    @sky.compute
    def unpickle(obj: object) -> None:
        return None

    unpickle(MakeDirOnUnpickle(str(marker))) >> pool  # the pool's client gets in: the test could fail
    assert marker.is_dir()
