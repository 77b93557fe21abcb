"""Which installer makes a node's environment: the node's uv, a uv wheel the client sends, or venv+pip."""

from __future__ import annotations

import asyncio
from typing import Literal

from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.node_commands import BootstrapFailed
from skyward.bootstrap.wheel_cache import Wheel
from skyward.bootstrap.wheel_download import uv_wheel
from skyward.errors import ProvisionError

Installer = Literal["auto", "uv", "pip"]


async def choose_installer(choice: Installer, facts: NodeFacts, host: str) -> tuple[str | None, Wheel | None]:
    """The node's uv, or a uv wheel to unpack there, or neither (venv+pip)."""
    if choice == "pip":
        _require_venv(facts, host, "installer='pip'")
        return None, None
    if facts.uv is not None:
        return facts.uv, None
    try:
        wheel = await asyncio.to_thread(uv_wheel, facts)
    except ProvisionError as exc:
        wheel, reason = None, str(exc)
    else:
        reason = "no uv wheel for this platform"
    if wheel is not None:
        return None, wheel
    if choice == "uv":
        raise BootstrapFailed(
            f"{host}: installer='uv' but the node has no uv and none could be fetched for it: {reason}"
        )
    _require_venv(facts, host, f"the node has no uv and none could be fetched for it ({reason})")
    return None, None


def _require_venv(facts: NodeFacts, host: str, why: str) -> None:
    if not facts.has_venv:
        raise BootstrapFailed(
            f"{host}: {why}, and {facts.python} cannot create a venv with pip (it lacks "
            "ensurepip; on Debian/Ubuntu: apt install python3-venv)"
        )
