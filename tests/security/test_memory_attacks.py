"""Issue 12, Medium: what a peer can make a node hold. Each test measures the worker's RSS (/proc/<pid>/status)."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

import pytest
from attackers import ask_all, message, outsider, rss_bytes

import skyward as sky
from skyward import transport
from skyward.ioloop import shared_loop

MB = 1 << 20


@pytest.fixture
def node() -> Iterator[tuple[sky.ComputePool, object]]:
    with sky.ComputePool(nodes=1) as pool:
        assert pool._deployment is not None
        yield pool, pool._deployment.nodes[0]


def _node_ca(pool: sky.ComputePool, started: object) -> str | None:
    """The node's CA certificate, public: it lets a foreign-certificate outsider accept the real node."""
    try:
        from skyward.certificates import node_ca
    except ImportError:  # a version without TLS
        return None
    return node_ca(pool._secret, started.info.name)  # type: ignore[attr-defined]


def _settled_rss(pid: int) -> int:
    """RSS once the node had a moment to drop what it was handed (the claim is what it *keeps*)."""
    shared_loop().run(asyncio.sleep(1.0)).result(10)
    return rss_bytes(pid)


@pytest.mark.parametrize("tls", ["plain", "foreign-cert"])
def test_twenty_thousand_actor_keys_from_an_outsider_cost_the_node_nothing(node, tls: str) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    before = _settled_rss(started.info.pid)
    keys = [f"k{i}" for i in range(20_000)]

    async def attack() -> list[object] | None:
        async with outsider(started.port, started.info.name, tls, _node_ca(pool, started)) as client:
            if client is None:
                return None
            advertise = transport.advertised_address(started.info.name, started.port)
            return await ask_all(client, advertise, keys, message("Heartbeat"))

    answers = shared_loop().run(attack()).result(300)
    grown = _settled_rss(started.info.pid) - before
    assert grown < 30 * MB, f"the node grew by {grown / MB:.0f} MB"
    assert answers is None or not any(answer is True for answer in answers)


def test_the_pools_own_client_gets_answers_on_the_nodes_key_only(node) -> None:  # type: ignore[no-untyped-def]
    """Even past the TLS door, a message to any other key ends its activation at once: no answer, no activation."""
    from casty import Client

    from skyward.credentials import KeyFiles, client_material

    pool, started = node
    advertise = transport.advertised_address(started.info.name, started.port)
    files = KeyFiles(client_material(pool._secret, started.info.name))
    before = _settled_rss(started.info.pid)

    async def attack() -> tuple[list[object], object]:
        client = Client(
            seeds=(started.dial,), name=transport.CLUSTER_NAME, limits=transport.LIMITS,
            compression=transport.COMPRESSION, tls=transport._tls(files),
            address_map=lambda address: started.dial if address == advertise else address,
        )  # fmt: skip
        async with asyncio.timeout(20):
            await client.__aenter__()
        try:
            others = await ask_all(client, advertise, [f"k{i}" for i in range(20_000)], transport.Heartbeat())
            own = (await ask_all(client, advertise, [transport._ACTOR_KEY], transport.Heartbeat()))[0]
        finally:
            await client.__aexit__(None, None, None)
        return others, own

    try:
        others, own = shared_loop().run(attack()).result(300)
    finally:
        files.close()
    grown = _settled_rss(started.info.pid) - before
    assert own is True  # the node's one key answers: the test could fail
    assert all(isinstance(answer, Exception) for answer in others)
    # An activation per key held ~217 MB for these 20,000 keys; casty's own bookkeeping of the keys it has seen
    # stays (~0.7 KB each, past the TLS door only).
    assert grown < 80 * MB, f"the node grew by {grown / MB:.0f} MB"


@pytest.mark.parametrize("tls", ["plain", "foreign-cert"])
def test_large_messages_from_an_outsider_are_not_buffered(node, tls: str) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    before = _settled_rss(started.info.pid)
    payload = os.urandom(120 * MB)

    async def attack(payload: bytes) -> list[object] | None:
        async with outsider(started.port, started.info.name, tls, _node_ca(pool, started)) as client:
            if client is None:
                return None
            advertise = transport.advertised_address(started.info.name, started.port)
            answers = []
            for i in range(3):
                msg = message("RunTask", task_id=f"big-{i}", payload=payload, blobs=())
                answers += await ask_all(client, advertise, [transport._ACTOR_KEY], msg, timeout=60)
            return answers

    answers = shared_loop().run(attack(payload)).result(300)
    del payload
    gc.collect()
    grown = _settled_rss(started.info.pid) - before
    assert grown < 30 * MB, f"the node grew by {grown / MB:.0f} MB and holds it (answers: {answers!r:.200})"


def big_result(size: int) -> bytes:
    return os.urandom(size)


def test_the_reply_cache_is_bounded_by_bytes(node) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    before = _settled_rss(started.info.pid)
    for _ in range(8):  # 512 MiB of results, one at a time; the node may keep 256 MiB of them
        assert len(sky.compute(big_result)(64 * MB) >> pool) == 64 * MB
    grown = _settled_rss(started.info.pid) - before
    assert grown < 320 * MB, f"the node keeps {grown / MB:.0f} MB of replies"
