"""Fixtures of the Slurm provider tests: one lab cluster (munged, slurmctld, two slurmd) per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slurm_lab import SlurmLab, unavailable_reason
from sshd_lab import Host, Lab, free_port, node_python
from sshd_lab import unavailable_reason as ssh_unavailable_reason


@pytest.fixture(scope="session")
def slurm_lab() -> Iterator[SlurmLab]:
    """Two compute nodes, ``sky1`` and ``sky2``, each in its own network and UTS namespace; ``SLURM_CONF`` set
    for the session so that ``sbatch`` & co. (the provider's too) reach this cluster."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = SlurmLab()
    previous = os.environ.get("SLURM_CONF")
    os.environ.update(lab.env)
    try:
        yield lab
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        lab.close()


@pytest.fixture
def lab(slurm_lab: SlurmLab) -> Iterator[SlurmLab]:
    """The session's lab, every node idle and no job left when the test starts and when it ends."""
    slurm_lab.resume_all()
    yield slurm_lab
    slurm_lab.resume_all()


@pytest.fixture(scope="session")
def login_node(slurm_lab: SlurmLab) -> Iterator[tuple[Lab, Host]]:
    """A login "host" for ``Slurm(login=...)``: an sshd of the SSH tests' lab on 127.0.0.1 whose sessions have
    this cluster's ``SLURM_CONF`` (as a login node's profile would)."""
    reason = ssh_unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        # Lab._start is the one way to give a loopback host session variables (sshd's SetEnv).
        # python3.X on its PATH is this test run's interpreter, from which environments are built.
        path = f"{os.path.dirname(node_python())}:/usr/local/bin:/usr/bin:/bin"
        host = lab._start("login", "127.0.0.1", free_port(), None, None, env={**slurm_lab.env, "PATH": path})
        yield lab, host
    finally:
        lab.close()
