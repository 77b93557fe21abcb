"""The per-image environment on the cluster's shared home (``python=None``), built through the login node
(``login=``) or on this host (without it, when this interpreter lacks what the image asks for).

Compute nodes see the login node's home directory (the usual cluster layout), so the environment `sky.SSH`
builds on a host (``~/.skyward/envs/<key>``, once per image, under its lock, reused by every later pool) is
built here once, over the login connection or by running the same node script locally
(`skyward.providers.slurm.local_node`), and every node's ``srun`` runs its interpreter. This module only
drives `skyward.bootstrap`, as `sky.SSH` does for one host.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from skyward.bootstrap.progress import BootstrapEvent, Phase
from skyward.bootstrap.remote import BootstrapSettings, NodeBootstrap, probe
from skyward.errors import ProvisionError
from skyward.image import Image
from skyward.ioloop import EventLoopThread


def build_environment(
    conn: Any,
    io: EventLoopThread,
    where: str,
    python: str,
    image: Image,
    settings: BootstrapSettings,
    report: Callable[[str], None],
) -> str:
    """Make sure the image's environment exists under the (shared) home that `conn` reaches; returns its
    interpreter. `conn`: the login node's asyncssh connection, or `LocalNode` (this host) without ``login=``;
    `io` the loop it lives on; `where` names it in progress and errors."""
    started = time.monotonic()

    def emit(phase: Phase, message: str = "") -> None:
        event = BootstrapEvent("environment", where, phase, message, time.monotonic() - started)
        report(str(event).removeprefix("skyward "))

    began, settled = threading.Event(), threading.Event()

    async def build() -> str:
        began.set()
        try:
            return await _build(conn, where, python, image, settings, emit)
        finally:
            settled.set()

    building = io.run(build())
    try:
        return building.result(settings.install_timeout + settings.probe_timeout + 60)
    except BaseException:
        # Ctrl-C here: the build's remote script is interrupted (its installer killed, its lock released: see
        # `skyward.bootstrap.node_commands`) before the caller closes the connection; the environment stays
        # without its ready marker, so the next build removes it and starts again.
        building.cancel()
        if began.is_set():
            settled.wait(15)
        raise


async def _build(
    conn: Any, where: str, python: str, image: Image, settings: BootstrapSettings, emit: Callable[..., None]
) -> str:
    from skyward.bootstrap.plan import make_plan
    from skyward.bootstrap.wheel_download import offline_wheelhouse
    from skyward.providers.ssh import build_project_wheels

    emit("probe", python)
    facts = await probe(conn, python, where, settings.probe_timeout)
    client = f"{sys.version_info.major}.{sys.version_info.minor}"
    if facts.implementation != "cpython" or facts.python_minor != client:
        raise ProvisionError(
            f"{where}: {facts.python} is {facts.implementation} {facts.python_version}, but this "
            f"client runs CPython {client}; functions travel as bytecode of the client's version. "
            f"Pass Slurm(python=...) naming a Python {client} on the cluster."
        )
    if image.python and image.python not in (facts.python_minor, facts.python_version):
        raise ProvisionError(
            f"{where}: Image(python={image.python!r}) but {facts.python} is Python {facts.python_version}"
        )
    project_wheels = await asyncio.to_thread(build_project_wheels)
    plan = await asyncio.to_thread(make_plan, image, facts, project_wheels)

    async def wheelhouse() -> list:  # type: ignore[type-arg]
        resolution = plan.resolution
        return await asyncio.to_thread(offline_wheelhouse, resolution.pins, resolution.unresolved, facts)

    bootstrap = NodeBootstrap(conn, where, facts, plan, settings, emit, wheelhouse)
    return await bootstrap.ensure()
