"""sky.Slurm's options as Slurm's command line, without a cluster."""

from __future__ import annotations

import pytest

import skyward as sky
from skyward.providers.slurm.allocation import fields
from skyward.providers.slurm.provider import gres_of, memory_mib
from skyward.spec import ClusterSpec, Resources


def cluster(**resources: object) -> ClusterSpec:
    spec = Resources(**resources)  # type: ignore[arg-type]
    return ClusterSpec("sky-1", 3, sky.Worker(concurrency=4), "slurm", spec)


def test_the_pool_and_provider_options_become_the_jobs_options() -> None:
    provider = sky.Slurm(
        partition="cpu",
        account="lab",
        time="2:00:00",
        qos="high",
        constraint="ib",
        sbatch_args=["--exclusive"],
    )
    args = provider.salloc_args(cluster(cpu=16, memory="32GB", accelerator="A100:2"))
    assert args == [
        "--nodes=3",
        "--ntasks-per-node=1",
        "--cpus-per-task=16",
        "--time=2:00:00",
        "--job-name=skyward-sky-1",
        "--no-kill",
        "--partition=cpu",
        "--account=lab",
        "--qos=high",
        "--constraint=ib",
        "--gres=gpu:a100:2",
        "--mem=32768M",
        "--exclusive",
    ]


def test_cpus_default_to_the_workers_slots_and_gres_overrides_the_accelerator() -> None:
    args = sky.Slurm(gres="gpu:Tesla_V100:1").salloc_args(cluster(accelerator="v100"))
    assert "--cpus-per-task=4" in args and "--gres=gpu:Tesla_V100:1" in args
    assert not any(a.startswith(("--mem", "--partition", "--account")) for a in args)


@pytest.mark.parametrize(
    ("given", "mib"), [("16GB", 16384), ("512MB", 512), ("1.5G", 1536), ("2TiB", 2 << 20), (1 << 30, 1024)]
)
def test_memory_sizes_in_mib(given: object, mib: int) -> None:
    assert memory_mib(given) == mib  # type: ignore[arg-type]


def test_accelerators_as_gres() -> None:
    assert gres_of("A100:8") == "gpu:a100:8" and gres_of("T4") == "gpu:t4:1"


def test_what_slurm_cannot_choose_is_refused() -> None:
    with pytest.raises(ValueError, match="machine='m5.large'"):
        sky.ComputePool(provider=sky.Slurm(), nodes=1, machine="m5.large")
    with pytest.raises(TypeError, match="sequence of options"):
        sky.Slurm(sbatch_args="--exclusive")  # type: ignore[arg-type]


def test_scontrol_one_line_fields() -> None:
    line = "JobId=12 JobName=skyward-x JobState=PENDING Reason=Resources Dependency=(null) NodeList=(null)"
    assert fields(line)["JobState"] == "PENDING" and fields(line)["Reason"] == "Resources"
