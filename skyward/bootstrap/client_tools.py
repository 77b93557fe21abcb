"""The client's own packaging tools, as the wheel modules run them: its uv (if it really runs), pip, and one lock.

Wheel production runs in worker threads (one per node being bootstrapped); `wheel_lock` keeps it to one at a
time, which is plenty and keeps two nodes from building the same wheel twice.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import threading
from functools import cache

from skyward.errors import ProvisionError

wheel_lock = threading.RLock()
_OUTPUT_TAIL = 30


@cache
def _uv_on_path() -> tuple[str, str] | None:
    """``(path, version)`` of the uv on this client's PATH if it really runs: a pyenv shim may be found there
    and only answer ``pyenv: uv: command not found``."""
    uv = shutil.which("uv")
    if not uv:
        return None
    try:
        output = subprocess.run(
            [uv, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    parts = output.split()
    if len(parts) < 2 or parts[0] != "uv":
        return None
    return uv, parts[1]


def client_uv() -> str | None:
    """The uv on this client's PATH, if it runs."""
    found = _uv_on_path()
    return found[0] if found else None


def uv_version() -> str | None:
    """The version of the client's uv, to give the nodes the same one."""
    found = _uv_on_path()
    return found[1] if found else None


def pip_command() -> list[str]:
    """The command that runs pip here: this interpreter's pip, else a pip that uv runs."""
    if importlib.util.find_spec("pip"):
        return [sys.executable, "-m", "pip"]
    uv = client_uv()
    if uv:
        # A pip of its own, fetched once into uv's cache, run by this interpreter (uv must not fetch another).
        return [uv, "tool", "run", "--python", sys.executable, "--from", "pip", "pip"]
    raise ProvisionError(
        "cannot download wheels for the nodes: this environment has neither pip nor uv (install one of them)"
    )


def run_tool(command: list[str], what: str) -> None:
    """Run a build or download; a failure raises `ProvisionError` with `what` and the end of its output."""
    # umask 077: what the build or download writes into the cache is private from its creation.
    result = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, umask=0o077
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-_OUTPUT_TAIL:]
        raise ProvisionError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(output))
