"""Issue 12, Medium: nobody joins a node's cluster, and what a peer advertises never reaches a terminal raw."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from casty import ActorSystem, Cluster, MemberChanged, NodeId

import skyward as sky
from skyward import transport
from skyward.ioloop import shared_loop

ESC = "\x1b"


class _Crash(Exception):
    pass


async def _join_and_crash(node_port: int, node_name: str, own_port: int, stay: float) -> int:
    """Join the node's cluster as a member advertising ANSI escapes, then crash; answer how many members it saw."""
    node_address = transport.advertised_address(node_name, node_port)
    cluster = Cluster(
        bind=f"127.0.0.1:{own_port}",
        advertise=f"{ESC}[2J{ESC}[31mEVIL{ESC}[0m:{own_port}",
        seeds=(f"127.0.0.1:{node_port}",),
        name=transport.CLUSTER_NAME,
        limits=transport.LIMITS,
        compression=transport.COMPRESSION,
        address_map=lambda address: f"127.0.0.1:{node_port}" if address == node_address else address,
    )
    seen = 0
    try:
        async with asyncio.timeout(
            stay + 10
        ):  # entering waits for a seed's answer: forever, if it is refused
            async with ActorSystem(cluster=cluster) as system:
                await asyncio.sleep(stay)
                seen = len(system.members)
                raise _Crash  # leaving by an exception is a crash: the node sees the member turn suspect, then dead
    except (_Crash, TimeoutError):
        pass
    return seen


def test_an_outsider_cannot_join_a_node_nor_print_escapes_on_the_client(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with sky.ComputePool(nodes=1) as pool:
        assert pool._deployment is not None
        started = pool._deployment.nodes[0]
        seen = (
            shared_loop()
            .run(_join_and_crash(started.port, started.info.name, transport.free_port(), stay=3))
            .result(60)
        )
        shared_loop().run(asyncio.sleep(13)).result(30)  # suspect after 5 s, dead after 5 more: logged (INFO)
        out = capfd.readouterr()
    assert ESC not in out.out and ESC not in out.err, (
        "a peer's escape sequences reached the client's terminal"
    )
    assert seen <= 1, f"the outsider joined: it saw {seen} members"


def test_the_transport_logs_peer_supplied_text_escaped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="skyward.transport")
    observer = transport.TransportObserver()
    evil = NodeId(f"{ESC}[2Jevil{ESC}]0;title\x07:1", uuid.uuid4())
    observer(MemberChanged(evil, "dead", "alive"))
    [record] = [r for r in caplog.records if r.name == "skyward.transport"]
    text = record.getMessage()
    assert record.levelno == logging.INFO and "evil" in text and "dead" in text  # it was logged: could fail
    assert ESC not in text and "\x07" not in text and "\\x1b[2J" in text
