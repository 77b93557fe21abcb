"""sky.Slurm on the lab cluster: agents on both compute nodes, the job cancelled on every exit path."""

from __future__ import annotations

import os
import socket
import time

from slurm_lab import SlurmLab

import skyward as sky
from skyward.providers.slurm import Slurm


def where() -> tuple[str, int, int]:
    """The hostname, network namespace inode and pid of the process that runs this task."""
    return socket.gethostname(), os.stat("/proc/self/ns/net").st_ino, os.getpid()


def provider(**options: object) -> Slurm:
    settings: dict[str, object] = {"time": "10:00", "start_timeout": 60.0, "quiet": True}
    settings.update(options)
    return Slurm(**settings)  # type: ignore[arg-type]


def test_work_runs_on_both_compute_nodes_and_the_job_is_cancelled_after(lab: SlurmLab) -> None:
    progress: list[str] = []
    entered = time.monotonic()
    with sky.ComputePool(provider=provider(progress=progress.append), nodes=2) as pool:
        first = pool.submit(where).result()
        first_result_s = time.monotonic() - entered
        seen = {first, *pool.broadcast(where)}
        [job] = lab.jobs()
        hosts = {node.host for node in pool.nodes}
    expected = {(name, node.netns_inode()) for name, node in lab.nodes.items()}
    assert {(host, inode) for host, inode, _ in seen} == expected
    assert hosts == set(lab.nodes)
    assert all(pid != os.getpid() for _, _, pid in seen)
    assert any("RUNNING" in line for line in progress)
    assert job not in lab.jobs_after_close(), f"job {job} still holds the nodes after the pool closed"
    print(f"time from `with` to the first result: {first_result_s:.2f}s")
