"""How the client reaches Slurm agents: each agent listens on its node's cluster address, nothing between.

And what that listener gives another host of the cluster network (here: the lab's controller namespace, on the
nodes' bridge): the TLS handshake and nothing more, at no cost in the agent's memory (tests/security's
attacks, aimed at the node's address instead of loopback).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_lab import SlurmLab

import skyward as sky
from skyward import transport
from skyward.certificates import node_ca
from skyward.ioloop import shared_loop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "security"))
from attackers import ask_all, message, outsider, rss_bytes

MB = 1 << 20


def _stat(pid: int) -> tuple[str, int]:
    """A process's command name and its parent's pid."""
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], int(tail.split()[1])


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses process `pid` itself listens on (its sockets in its network namespace's table)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        for row in list(table)[1:]:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and inode in inodes:  # LISTEN
                address, port = local.split(":")
                found.add((socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)))
    return found


@pytest.fixture
def pool(lab: SlurmLab) -> Iterator[sky.ComputePool]:
    slurm = sky.Slurm(time="10:00", start_timeout=60.0, quiet=True)
    with sky.ComputePool(provider=slurm, nodes=2) as pool:
        yield pool
    assert lab.jobs_after_close() == []


def test_each_agent_listens_on_its_node_address_and_is_the_steps_own_process(
    lab: SlurmLab, pool: sky.ComputePool
) -> None:
    for started in pool._deployment.nodes:  # type: ignore[union-attr]
        node = lab.nodes[started.info.host]
        assert started.dial == f"{node.address}:{started.port}"  # the client dials the agent itself
        assert listening(started.info.pid) == {(node.address, started.port)}  # not loopback, nothing else
        assert _stat(_stat(started.info.pid)[1])[0].startswith("slurmstepd")  # no relay in between
    assert sorted(pool.broadcast(socket.gethostname)) == sorted(lab.nodes)


def _target(pool: sky.ComputePool, lab: SlurmLab) -> tuple[object, str, str]:
    started = pool._deployment.nodes[0]  # type: ignore[union-attr]
    return started, lab.nodes[started.info.host].address, node_ca(pool._secret, started.info.name)


@pytest.mark.parametrize("tls", ["plain", "foreign-cert"])
def test_a_host_of_the_cluster_network_without_the_pools_certificate_is_refused_at_the_door(
    lab: SlurmLab, pool: sky.ComputePool, tls: str
) -> None:
    started, address, ca = _target(pool, lab)
    socket.create_connection((address, started.port), timeout=5).close()  # it reaches the port: no firewall
    before = rss_bytes(started.info.pid)
    keys = [f"k{i}" for i in range(20_000)]
    payload = os.urandom(120 * MB)

    async def attack(payload: bytes) -> str | list[object]:
        async with outsider(started.port, started.info.name, tls, ca, host=address) as client:
            if client is None:
                return "refused at the door"
            advertise = transport.advertised_address(started.info.name, started.port)
            answers = await ask_all(client, advertise, keys, message("Heartbeat"))
            msg = message("RunTask", task_id="big", payload=payload, blobs=())
            return answers + await ask_all(client, advertise, [transport._ACTOR_KEY], msg, timeout=60)

    answer = shared_loop().run(attack(payload)).result(300)
    del payload
    gc.collect()
    shared_loop().run(asyncio.sleep(1.0)).result(10)
    grown = rss_bytes(started.info.pid) - before
    assert answer == "refused at the door", f"{answer!r:.300}"
    assert grown < 30 * MB, f"the agent grew by {grown / MB:.0f} MB"
    assert pool.submit(socket.gethostname).result() in lab.nodes  # and the pool still works
