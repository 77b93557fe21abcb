"""The client half of a bootstrap over one SSH connection: check, upload, install (after `probe`).

Runs on skyward's I/O loop (asyncssh); everything that blocks (building, repacking or downloading wheels) runs in
a worker thread. Its parts: calling the node script (`node_commands`), choosing the installer (`installer`),
sending wheels (`upload`). The node half is `skyward.bootstrap.node_script`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.installer import Installer, choose_installer
from skyward.bootstrap.node_commands import (
    TAIL_LINES,
    BootstrapFailed,
    answer_in,
    probe,
    remote_path,
    run_node_script,
)
from skyward.bootstrap.plan import InstallPlan
from skyward.bootstrap.progress import Phase
from skyward.bootstrap.upload import remote_wheel, upload_wheels
from skyward.bootstrap.wheel_cache import Wheel

if TYPE_CHECKING:
    import asyncssh

__all__ = [
    "BootstrapFailed",
    "BootstrapSettings",
    "Emit",
    "Installer",
    "NodeBootstrap",
    "probe",
    "remote_path",
    "run_node_script",
]

Emit = Callable[[Phase, str], None]


@dataclass(frozen=True)
class BootstrapSettings:
    """The provider's choices that shape a bootstrap (see `sky.SSH` for each)."""

    offline: bool | None
    installer: Installer
    index_url: str | None
    install_timeout: float
    probe_timeout: float = 60.0


class NodeBootstrap:
    """Makes sure the environment of one plan exists on one node, installing it when it does not."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        host: str,
        facts: NodeFacts,
        plan: InstallPlan,
        settings: BootstrapSettings,
        emit: Emit,
        wheelhouse: Callable[[], Awaitable[list[Wheel]]],
    ) -> None:
        """`wheelhouse` returns the wheels an offline node needs; nodes of one plan share one (see SSH)."""
        self._wheelhouse = wheelhouse
        self._conn = conn
        self._host = host
        self._facts = facts
        self._plan = plan
        self._settings = settings
        self._emit = emit

    @property
    def env_dir(self) -> str:
        return f"{self._facts.root}/envs/{self._plan.key}"

    @property
    def env_python(self) -> str:
        return f"{self.env_dir}/bin/python"

    async def ensure(self) -> str:
        """Install the plan's environment unless it exists; returns the environment's interpreter."""
        settings = self._settings
        status, lines = await self._script(
            {
                "command": "check",
                "root": self._facts.root,
                "key": self._plan.key,
                "probe_index": settings.offline is None,
                "index_url": settings.index_url,
            },
            timeout=settings.probe_timeout,
        )
        answer = answer_in(lines, "SKYWARD-CHECK")
        if answer is None:
            raise BootstrapFailed(
                f"{self._host}: checking for the environment failed (exit {status}):\n"
                + "\n".join(lines[-TAIL_LINES:])
            )
        if answer["cached"]:
            self._emit("cached", f"environment {self._plan.key} exists; nothing to install")
            return self.env_python
        online = (not settings.offline) if settings.offline is not None else bool(answer["online"])
        uv, uv_wheel_file = await choose_installer(settings.installer, self._facts, self._host)
        to_upload = list(self._plan.project_wheels)
        wheelhouse: list[Wheel] = []
        if not online:
            wheelhouse = await self._wheelhouse()
            to_upload += wheelhouse
        if uv_wheel_file is not None:
            to_upload.append(uv_wheel_file)
        sent, size = await upload_wheels(self._conn, self._facts.root, to_upload)
        if online:
            mode = "online"
        else:
            mode = "offline (forced)" if settings.offline else "no package index reachable: offline"
        self._emit("upload", f"{mode}; {sent} of {len(to_upload)} wheels sent ({size / 2**20:.1f} MiB)")
        self._emit("install", f"{'uv' if uv or uv_wheel_file else 'venv+pip'}, {mode}, into {self.env_dir}")
        result = await self._install(online, uv, uv_wheel_file, wheelhouse)
        if result["outcome"] == "cached":
            self._emit("installed", "installed meanwhile by another bootstrap sharing this home; reused")
        else:
            self._emit("installed", f"environment {self._plan.key} installed in {result['seconds']:.1f}s")
        return self.env_python

    def _remote_wheel(self, wheel: Wheel) -> str:
        return remote_wheel(self._facts.root, wheel)

    async def _install(
        self, online: bool, uv: str | None, uv_wheel_file: Wheel | None, wheelhouse: list[Wheel]
    ) -> dict[str, Any]:
        plan = self._plan
        params = {
            "command": "install",
            "root": self._facts.root,
            "key": plan.key,
            "python": self._facts.python,
            "installer": "uv" if uv or uv_wheel_file else "pip",
            "uv": uv,
            "uv_wheel": self._remote_wheel(uv_wheel_file) if uv_wheel_file else None,
            "online": online,
            "index_url": self._settings.index_url,
            "requirements": list(plan.requirements),
            "constraints": list(plan.constraints),
            "wheelhouse": [self._remote_wheel(w) for w in wheelhouse],
            "local_wheels": [self._remote_wheel(w) for w in plan.project_wheels],
            "apt": list(plan.apt),
            "facts": {"sudo": self._facts.sudo},
        }

        def on_line(line: str) -> None:
            if line.startswith("SKYWARD-STEP "):
                phase, _, text = line[len("SKYWARD-STEP ") :].partition(" ")
                if phase in ("wait", "install"):
                    self._emit(phase, text)  # type: ignore[arg-type]

        status, lines = await self._script(params, timeout=self._settings.install_timeout, on_line=on_line)
        result = answer_in(lines, "SKYWARD-RESULT")
        if status != 0 or result is None:
            failed = next((i for i, line in enumerate(lines) if line.startswith("SKYWARD-FAILED")), None)
            detail = lines[failed:] if failed is not None else lines[-TAIL_LINES:]
            raise BootstrapFailed(
                f"{self._host}: bootstrap of environment {plan.key} failed (exit {status}); the end of its log "
                f"({self.env_dir}.log):\n" + "\n".join(detail)
            )
        return result

    async def _script(
        self, params: dict[str, Any], *, timeout: float, on_line: Callable[[str], None] | None = None
    ) -> tuple[int, list[str]]:
        return await run_node_script(
            self._conn, self._facts.python, self._host, params, timeout=timeout, on_line=on_line
        )
