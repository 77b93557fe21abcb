"""Fixtures of the Slurm provider tests: one lab cluster (munged, slurmctld, two slurmd) per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slurm_lab import SlurmLab, unavailable_reason


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
