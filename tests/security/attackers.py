"""What another local account can do to a node's port: a casty client or member with no pool certificate."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from casty import Client

from skyward import transport


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` now (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def message(kind: str, **fields: object) -> object:
    """One of skyward's messages, with a made-up secret if this version's messages carry one."""
    cls = getattr(transport, kind)
    if "secret" in {f.name for f in dataclasses.fields(cls)}:
        fields = {"secret": b"x" * 32, **fields}
    return cls(**fields)


@asynccontextmanager
async def outsider(
    port: int,
    node_name: str,
    tls: str = "plain",
    node_ca: str | None = None,
    timeout: float = 5,
    host: str = "127.0.0.1",
) -> AsyncIterator[Client | None]:
    """A casty client of the node's port without the pool's certificate; None if the node refuses it.

    `tls`: ``"plain"`` speaks no TLS; ``"foreign-cert"`` presents a client certificate of another pool, and
    trusts `node_ca` (public: it only lets the outsider accept the real node), so only the node's check stops it.
    `host`: where the node listens (a Slurm node's cluster address; loopback for the others).
    """
    advertise = transport.advertised_address(node_name, port)
    files = None
    casty_tls = None
    if tls == "foreign-cert":
        from casty import TLS

        from skyward.credentials import KeyFiles, TLSMaterial, client_material

        assert node_ca is not None
        foreign = client_material(os.urandom(32), node_name)
        files = KeyFiles(TLSMaterial(foreign.cert, foreign.key, node_ca))
        casty_tls = TLS(cert=files.cert, key=files.key, ca=files.ca)
    client = Client(
        tls=casty_tls,
        seeds=(f"{host}:{port}",),
        name=transport.CLUSTER_NAME,
        limits=transport.LIMITS,
        compression=transport.COMPRESSION,
        address_map=lambda address: f"{host}:{port}" if address == advertise else address,
    )
    try:
        try:
            async with asyncio.timeout(timeout):
                await client.__aenter__()
        except TimeoutError:
            yield None
            return
        try:
            yield client
        finally:
            await client.__aexit__(None, None, None)
    finally:
        if files is not None:
            files.close()


async def ask_all(
    client: Client, advertise: str, keys: list[str], msg: object, timeout: float = 10
) -> list[object]:
    """Ask `msg` of each key of skyward's actor on the node, concurrently; the answers or the exceptions."""

    async def one(key: str) -> object:
        try:
            async with asyncio.timeout(timeout):
                return await client.ref(transport.task_executor, key, at=advertise).ask(msg)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a refusal is an answer here
            return exc

    answers: list[object] = []
    for start in range(0, len(keys), 500):
        answers += await asyncio.gather(*(one(key) for key in keys[start : start + 500]))
    return answers
