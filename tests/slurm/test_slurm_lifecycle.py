"""The pool's Slurm job ends on every exit path: an error, Ctrl-C, a job that never leaves the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest
from slurm_lab import SlurmLab

import skyward as sky
from skyward.providers.slurm import Slurm


def test_an_exception_in_the_block_cancels_the_job(lab: SlurmLab) -> None:
    jobs: list[str] = []
    provider = Slurm(time="10:00", quiet=True)
    with pytest.raises(RuntimeError, match="boom"), sky.ComputePool(provider=provider, nodes=2):
        jobs = lab.jobs()
        raise RuntimeError("boom")
    assert len(jobs) == 1
    assert lab.jobs_after_close() == []


def test_a_job_that_stays_pending_times_out_and_is_cancelled(lab: SlurmLab) -> None:
    progress: list[str] = []
    # Held until tomorrow: PENDING (BeginTime) for as long as anyone waits.
    provider = Slurm(
        time="10:00", start_timeout=4, sbatch_args=("--begin=now+1day",), progress=progress.append
    )
    started = time.monotonic()
    expected = r"did not start within 4s: it is PENDING \(BeginTime\)"
    with pytest.raises(sky.ProvisionError, match=expected), sky.ComputePool(provider=provider, nodes=2):
        pass
    assert time.monotonic() - started < 60
    assert any("PENDING (BeginTime)" in line for line in progress), progress
    assert lab.jobs_after_close() == []


def test_a_job_slurm_refuses_fails_with_slurms_reason(lab: SlurmLab) -> None:
    provider = Slurm(constraint="no-such-feature", quiet=True)
    expected = "(?s)salloc refused the job.*Invalid feature"
    with pytest.raises(sky.ProvisionError, match=expected), sky.ComputePool(provider=provider, nodes=2):
        pass
    assert lab.jobs_after_close() == []


CLIENT = textwrap.dedent(
    """
    import sys, time
    import skyward as sky
    from skyward.providers.slurm import Slurm

    provider = Slurm(time="10:00", sbatch_args=tuple(sys.argv[1:]), start_timeout=300)
    with sky.ComputePool(provider=provider, nodes=2) as pool:
        print("RUNNING", flush=True)
        time.sleep(300)
    """
)


def _client_until(
    lab: SlurmLab, seen_enough: Callable[[str], bool], *args: str
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `CLIENT` with `args` against the lab; read its output until a line satisfies `seen_enough`."""
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **lab.env},
    )
    assert client.stdout is not None
    seen = []
    for line in client.stdout:
        seen.append(line)
        if seen_enough(line):
            break
    return client, seen


@pytest.mark.parametrize("when", ["pending", "running"])
def test_ctrl_c_cancels_the_job(lab: SlurmLab, when: str) -> None:
    args = ["--begin=now+1day"] if when == "pending" else []
    wanted = "PENDING (BeginTime)" if when == "pending" else "RUNNING"
    client, seen = _client_until(lab, lambda line: wanted in line, *args)
    assert lab.jobs(), "".join(seen)
    client.send_signal(signal.SIGINT)
    rest, _ = client.communicate(timeout=60)
    assert "KeyboardInterrupt" in rest, "".join(seen) + rest
    assert lab.jobs_after_close() == []


def test_a_client_killed_outright_gives_the_allocation_back(lab: SlurmLab) -> None:
    """SIGKILL: no teardown runs, yet salloc's command (cat on the client's pipe) ends and the job with it."""
    client, seen = _client_until(lab, lambda line: "RUNNING" in line and "slurm job" not in line)
    assert lab.jobs(), "".join(seen)
    client.kill()
    client.wait()
    assert lab.jobs_after_close() == []
    assert lab.node_states() == {name: "idle" for name in lab.nodes}
