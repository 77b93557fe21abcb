"""Ctrl-C while the image's environment is built on the shared home (``login=`` without ``python=``): no job, no
installer left running, no lock held, no environment a later pool would trust; the next pool builds and runs."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_lab import SlurmLab
from sshd_lab import Host, Lab

import skyward as sky

CLIENT = textwrap.dedent(
    """
    import sys
    import skyward as sky

    login, key, known_hosts = sys.argv[1:]
    slurm = sky.Slurm(login=login, key_file=key, known_hosts=known_hosts, offline=True, time="10:00")
    with sky.ComputePool(provider=slurm, nodes=2) as pool:
        print("POOL READY", flush=True)
    """
)


def interpreter() -> str:
    return sys.executable


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


def login_processes(home: str) -> list[str]:
    """The processes the login's sessions started (their HOME is its home), sshd's own excepted."""
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


@pytest.fixture
def envs(login_node: tuple[Lab, Host]) -> Iterator[Path]:
    """The login's environments folder, empty before and after (other tests count their builds)."""
    folder = Path(login_node[1].home) / ".skyward" / "envs"
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_ctrl_c_during_the_environment_build_leaves_nothing_half_done(
    lab: SlurmLab, login_node: tuple[Lab, Host], envs: Path
) -> None:
    ssh_lab, login = login_node
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}  # only the login node knows the cluster
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, login.spec, str(ssh_lab.client_key), str(ssh_lab.known_hosts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert client.stdout is not None
    seen = []
    for line in client.stdout:  # until the node script creates the environment, under its lock
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
    assert "KeyboardInterrupt" in rest and "POOL READY" not in rest, "".join(seen) + rest
    assert lab.jobs_after_close() == []  # the build comes before the job: none was submitted
    deadline = time.monotonic() + 15
    while login_processes(str(login.home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert login_processes(str(login.home)) == []  # the node script and its installer ended: nothing writes
    assert lock_is_free(lock)
    assert not (folder / ".skyward-ready").exists()  # what is there is not trusted

    events: list[str] = []
    slurm = sky.Slurm(
        login=login.spec,
        key_file=str(ssh_lab.client_key),
        known_hosts=str(ssh_lab.known_hosts),
        offline=True,
        time="10:00",
        progress=events.append,
    )
    with sky.ComputePool(provider=slurm, nodes=2) as pool:
        interpreters = set(pool.broadcast(interpreter))
    assert interpreters == {str(folder / "bin" / "python")}
    assert any("installed" in line and "environment" in line for line in events), events
    assert lab.jobs_after_close() == []
