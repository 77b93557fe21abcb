"""Ctrl-C while the image's environment is built on the shared home (``login=`` without ``python=``): no job, no
installer left running, no lock held, no environment a later pool would trust; the next pool builds and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from build_watch import interrupt_build, lock_is_free
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
    folder, _ = interrupt_build(client, envs, str(login.home))
    assert lab.jobs_after_close() == []  # the build comes before the job: none was submitted
    assert lock_is_free(folder.with_name(folder.name + ".lock"))
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
