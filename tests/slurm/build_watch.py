"""Watching an environment build on the lab and interrupting it like Ctrl-C: what the tests of an interrupted
build share (its processes, its lock)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path


def running_in(folder: Path) -> list[str]:
    """Command lines of the processes that name `folder` (an installer writing into it, its Python)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            line = " ".join(part.decode(errors="replace") for part in argv)
            if str(folder) in line:
                found.append(f"{entry}: {line}")
    return found


def processes_with_home(home: str) -> list[str]:
    """The processes whose HOME is `home` (what the login's sessions, or a client given that home, started),
    sshd's own excepted."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
                argv = (
                    Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            if f"HOME={home}".encode() in environ and not comm.startswith("sshd"):
                found.append(f"{entry}: {argv[:200]}")
    return found


def lock_is_free(path: Path) -> bool:
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.lockf(handle, fcntl.LOCK_UN)
        return True


def interrupt_build(client: subprocess.Popen[str], envs: Path, home: str) -> tuple[Path, str]:
    """Read `client`'s output until the node script creates the environment (under its lock) and an installer
    writes into it, send it SIGINT, and wait until it and every process with HOME=`home` ended.

    Returns the environment's folder and everything `client` printed."""
    assert client.stdout is not None
    seen = []
    for line in client.stdout:
        seen.append(line)
        if "install: creating" in line:
            break
    assert "install: creating" in seen[-1], "".join(seen)
    [lock] = envs.glob("*.lock")
    folder = envs / lock.name.removesuffix(".lock")
    deadline = time.monotonic() + 30
    while not running_in(folder) and time.monotonic() < deadline:  # the installer has started writing
        time.sleep(0.05)
    assert running_in(folder), "".join(seen)
    client.send_signal(signal.SIGINT)
    rest, _ = client.communicate(timeout=60)
    output = "".join(seen) + rest
    assert "KeyboardInterrupt" in rest and "POOL READY" not in rest, output
    deadline = time.monotonic() + 15
    while processes_with_home(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_home(home) == [], output  # the node script and its installer ended: nothing writes
    return folder, output
