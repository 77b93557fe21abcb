"""The environments of one pool's nodes: probe each node, check its Python, and make sure its environment exists.

Nodes of one platform share one install plan and, when offline, one wheelhouse (gathered once per pool); the
wheels of skyward and its plugins are built on the client (`build_project_wheels`), so that a node's code is
always this client's code. One node's bootstrap is `skyward.bootstrap.remote.NodeBootstrap`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.plan import InstallPlan, make_plan
from skyward.bootstrap.remote import BootstrapSettings, Emit, NodeBootstrap, probe
from skyward.bootstrap.requirements import project_distributions
from skyward.bootstrap.wheel_download import offline_wheelhouse
from skyward.bootstrap.wheels import Wheel, wheel_of_installed
from skyward.errors import ProvisionError
from skyward.image import Image

if TYPE_CHECKING:
    import asyncssh


class PoolEnvironments:
    """The install plans and offline wheelhouses that the nodes of one pool share."""

    def __init__(self, settings: BootstrapSettings) -> None:
        self.settings = settings
        self._plans: dict[str, InstallPlan] = {}
        self._wheelhouses: dict[str, asyncio.Future[list[Wheel]]] = {}
        self._plan_lock = asyncio.Lock()
        self._project_wheels: asyncio.Future[tuple[Wheel, ...]] | None = None

    def build_project_wheels(self) -> None:
        """Start building the wheels of skyward and its plugins (on the I/O loop, in a thread), for `ensure`."""
        # Built on this client (once: the cache is keyed by their sources) while the nodes connect, so that a
        # node's code is always this client's code.
        project_wheels = asyncio.ensure_future(asyncio.to_thread(build_project_wheels))
        project_wheels.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unused
        self._project_wheels = project_wheels

    async def ensure(
        self,
        conn: asyncssh.SSHClientConnection,
        host: str,
        python: str,
        image: Image,
        emit: Emit,
    ) -> str:
        """Probe the node behind `conn`, check its `python`, and install `image`'s environment there unless it
        exists; returns the environment's interpreter."""
        emit("probe", f"{python}")
        facts = await probe(conn, python, host, self.settings.probe_timeout)
        _check_python(facts, image, host)
        assert self._project_wheels is not None, "build_project_wheels() first"
        plan = await self._plan_for(image, facts, await asyncio.shield(self._project_wheels))
        bootstrap = NodeBootstrap(
            conn,
            host,
            facts,
            plan,
            self.settings,
            emit,
            lambda: self._wheelhouse_for(plan, facts),
        )
        return await bootstrap.ensure()

    async def _plan_for(
        self, image: Image, facts: NodeFacts, project_wheels: tuple[Wheel, ...]
    ) -> InstallPlan:
        async with self._plan_lock:  # nodes of one platform share one plan (and one wheelhouse)
            plan = self._plans.get(facts.python + facts.platform_key)
            if plan is None:
                plan = await asyncio.to_thread(make_plan, image, facts, project_wheels)
                self._plans[facts.python + facts.platform_key] = plan
            return plan

    async def _wheelhouse_for(self, plan: InstallPlan, facts: NodeFacts) -> list[Wheel]:
        """The wheels offline nodes of `plan` need: gathered (repacked, downloaded) once per pool and plan."""
        gathering = self._wheelhouses.get(plan.key)
        if gathering is None:
            pins, unresolved = plan.resolution.pins, plan.resolution.unresolved
            gathering = asyncio.ensure_future(asyncio.to_thread(offline_wheelhouse, pins, unresolved, facts))
            gathering.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unused
            self._wheelhouses[plan.key] = gathering
        return await asyncio.shield(gathering)  # one node's cancellation must not cancel it for the others


def build_project_wheels() -> tuple[Wheel, ...]:
    """The wheels of skyward and of every installed skyward plugin, as this client has them."""
    return tuple(wheel_of_installed(dist) for dist in project_distributions())


def _check_python(facts: NodeFacts, image: Image, where: str) -> None:
    client = f"{sys.version_info.major}.{sys.version_info.minor}"
    if image.python and image.python not in (facts.python_minor, facts.python_version):
        raise ProvisionError(
            f"{where}: Image(python={image.python!r}) but {facts.python} there is Python {facts.python_version}"
        )
    if facts.implementation != "cpython" or facts.python_minor != client:
        raise ProvisionError(
            f"{where}: {facts.python} is {facts.implementation} {facts.python_version}, but this client runs CPython "
            f"{client}; functions travel as bytecode of the client's version, so nodes need the same minor version. "
            f"Pass SSH(python=...) naming a Python {client} on the nodes."
        )
