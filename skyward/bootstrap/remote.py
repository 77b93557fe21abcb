"""The client half of a bootstrap over one SSH connection: probe, check, upload, install.

Runs on skyward's I/O loop (asyncssh); everything that blocks (building, repacking or downloading wheels) runs in
a worker thread. The node half is `skyward.bootstrap.node_script`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shlex
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal

from skyward.bootstrap.facts import NodeFacts
from skyward.bootstrap.plan import InstallPlan
from skyward.bootstrap.progress import Phase
from skyward.bootstrap.wheel_download import uv_wheel
from skyward.bootstrap.wheels import Wheel
from skyward.errors import ProvisionError

if TYPE_CHECKING:
    import asyncssh

Installer = Literal["auto", "uv", "pip"]
Emit = Callable[[Phase, str], None]

_NODE_SCRIPT = files("skyward.bootstrap").joinpath("node_script.py").read_text()
_TAIL_LINES = 40


class BootstrapFailed(ProvisionError):
    """A node's environment could not be set up. The message names the host and ends with its log's tail."""


@dataclass(frozen=True)
class BootstrapSettings:
    """The provider's choices that shape a bootstrap (see `sky.SSH` for each)."""

    offline: bool | None
    installer: Installer
    index_url: str | None
    install_timeout: float
    probe_timeout: float = 60.0


def remote_path(path: str) -> str:
    """Quote `path` for the remote shell, keeping a leading ``~/`` meaning the login's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


async def run_node_script(
    conn: asyncssh.SSHClientConnection,
    python: str,
    host: str,
    params: dict[str, Any],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
) -> tuple[int, list[str]]:
    """Run one command of the node script with the node's `python`; returns its exit status and output lines."""
    import asyncssh

    program = _NODE_SCRIPT + f"\n_main(json.loads({json.dumps(json.dumps(params))}))\n"
    # -I: the login's home is the working directory; a stray json.py there must not shadow the stdlib.
    command = f"exec {remote_path(python)} -I -"
    lines: deque[str] = deque(maxlen=2000)
    try:
        async with asyncio.timeout(timeout):
            process = await conn.create_process(
                command, stderr=asyncssh.STDOUT, encoding="utf-8", errors="replace"
            )
            process.stdin.write(program)
            process.stdin.write_eof()
            async for raw in process.stdout:
                if not raw:  # asyncssh may end with an empty read; a blank line is "\n"
                    break
                line = raw.rstrip("\n")
                lines.append(line)
                if on_line is not None:
                    on_line(line)
            await process.wait_closed()
    except TimeoutError:
        raise BootstrapFailed(
            f"{host}: the bootstrap step {params['command']!r} did not finish within {timeout:.0f}s; last output:\n"
            + "\n".join(list(lines)[-_TAIL_LINES:])
        ) from None
    status = process.exit_status if process.exit_status is not None else -1
    return status, list(lines)


def _answer(lines: list[str], prefix: str) -> dict[str, Any] | None:
    for line in reversed(lines):
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1 :])
    return None


async def probe(conn: asyncssh.SSHClientConnection, python: str, host: str, timeout: float) -> NodeFacts:
    """Ask the node about its interpreter, platform and tools."""
    status, lines = await run_node_script(conn, python, host, {"command": "probe"}, timeout=timeout)
    answer = _answer(lines, "SKYWARD-FACTS")
    if answer is None:
        tail = "\n".join(lines[-_TAIL_LINES:]) or "(no output)"
        if status == 127:
            raise BootstrapFailed(
                f"{host}: the interpreter {python!r} was not found there (exit 127). Pass SSH(python=...) as a name "
                f"on the login's PATH or an absolute path. Output:\n{tail}"
            )
        raise BootstrapFailed(f"{host}: probing the node with {python!r} failed (exit {status}):\n{tail}")
    return NodeFacts.from_json(answer)


async def _put_private(sftp: asyncssh.SFTPClient, wheel: Wheel, remote: str) -> None:
    """Upload `wheel` to `remote`, created with mode 0600 (``put`` would copy the local file's mode)."""
    import asyncssh

    attrs = asyncssh.SFTPAttrs(permissions=0o600)
    source = await asyncio.to_thread(open, wheel.path, "rb")
    try:
        async with sftp.open(remote, "wb", attrs=attrs, encoding=None) as out:
            while block := await asyncio.to_thread(source.read, 4 << 20):
                await out.write(block)
    finally:
        source.close()


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
        answer = _answer(lines, "SKYWARD-CHECK")
        if answer is None:
            raise BootstrapFailed(
                f"{self._host}: checking for the environment failed (exit {status}):\n"
                + "\n".join(lines[-_TAIL_LINES:])
            )
        if answer["cached"]:
            self._emit("cached", f"environment {self._plan.key} exists; nothing to install")
            return self.env_python
        online = (not settings.offline) if settings.offline is not None else bool(answer["online"])
        uv, uv_wheel_file = await self._choose_installer()
        to_upload = list(self._plan.project_wheels)
        wheelhouse: list[Wheel] = []
        if not online:
            wheelhouse = await self._wheelhouse()
            to_upload += wheelhouse
        if uv_wheel_file is not None:
            to_upload.append(uv_wheel_file)
        sent, size = await self._upload(to_upload)
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

    async def _choose_installer(self) -> tuple[str | None, Wheel | None]:
        """The node's uv, or a uv wheel to unpack there, or neither (venv+pip)."""
        choice = self._settings.installer
        if choice == "pip":
            self._require_venv("installer='pip'")
            return None, None
        if self._facts.uv is not None:
            return self._facts.uv, None
        try:
            wheel = await asyncio.to_thread(uv_wheel, self._facts)
        except ProvisionError as exc:
            wheel, reason = None, str(exc)
        else:
            reason = "no uv wheel for this platform"
        if wheel is not None:
            return None, wheel
        if choice == "uv":
            raise BootstrapFailed(
                f"{self._host}: installer='uv' but the node has no uv and none could be "
                f"fetched for it: {reason}"
            )
        self._require_venv(f"the node has no uv and none could be fetched for it ({reason})")
        return None, None

    def _require_venv(self, why: str) -> None:
        if not self._facts.has_venv:
            raise BootstrapFailed(
                f"{self._host}: {why}, and {self._facts.python} cannot create a venv with pip (it lacks "
                "ensurepip; on Debian/Ubuntu: apt install python3-venv)"
            )

    async def _upload(self, wheels: list[Wheel]) -> tuple[int, int]:
        """Send the wheels the node does not have yet to ``<root>/wheels/<sha256>/``; returns (count, bytes)."""
        import asyncssh

        sent = size = 0
        if not wheels:
            return sent, size
        async with self._conn.start_sftp_client() as sftp:
            for wheel in {w.sha256: w for w in wheels}.values():
                folder = f"{self._facts.root}/wheels/{wheel.sha256}"
                final = f"{folder}/{wheel.filename}"
                if await sftp.exists(final):
                    continue
                # Private from creation (0700 folders, 0600 files): another account on the node must not swap a
                # wheel between its upload and its install (the node also checks each wheel's SHA-256).
                await sftp.makedirs(folder, attrs=asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True)
                # A host sharing this home may upload the same file now: write aside, then rename atomically.
                partial = f"{folder}/.{wheel.filename}.{secrets.token_hex(4)}.part"
                await _put_private(sftp, wheel, partial)
                try:
                    await sftp.posix_rename(partial, final)
                except asyncssh.SFTPOpUnsupported:  # a server without OpenSSH's extension
                    try:
                        await sftp.rename(partial, final)
                    except asyncssh.SFTPError:
                        if not await sftp.exists(final):
                            raise
                        await sftp.remove(partial)  # another host got there first, with the same bytes
                sent += 1
                size += wheel.path.stat().st_size
        return sent, size

    def _remote_wheel(self, wheel: Wheel) -> str:
        return f"{self._facts.root}/wheels/{wheel.sha256}/{wheel.filename}"

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
        result = _answer(lines, "SKYWARD-RESULT")
        if status != 0 or result is None:
            failed = next((i for i, line in enumerate(lines) if line.startswith("SKYWARD-FAILED")), None)
            detail = lines[failed:] if failed is not None else lines[-_TAIL_LINES:]
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
