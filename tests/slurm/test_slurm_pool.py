"""sky.Slurm on the lab cluster: agents on both compute nodes, the job cancelled on every exit path."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest
from slurm_lab import SlurmLab
from sshd_lab import Host, Lab

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


def test_through_a_login_node_commands_run_there_and_nodes_are_reached_through_it(
    lab: SlurmLab,
    login_node: tuple[Lab, Host],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssh_lab, login = login_node
    # Only the login's sessions know this cluster (their SLURM_CONF): a command run here would fail.
    monkeypatch.delenv("SLURM_CONF")
    slurm = sky.Slurm(
        login=login.spec,
        key_file=str(ssh_lab.client_key),
        known_hosts=str(ssh_lab.known_hosts),
        python=sys.executable,
        time="10:00",
        quiet=True,
    )
    with sky.ComputePool(provider=slurm, nodes=2) as pool:
        seen = {(host, inode) for host, inode, _ in pool.broadcast(where)}
        dials = [node.dial for node in pool._deployment.nodes]  # type: ignore[attr-defined]
        monkeypatch.setenv("SLURM_CONF", lab.env["SLURM_CONF"])  # for the lab's own squeue
        [job] = lab.jobs()
    assert seen == {(name, node.netns_inode()) for name, node in lab.nodes.items()}
    assert all(dial.startswith("127.0.0.1:") for dial in dials), dials  # forwards through the login node
    assert job not in lab.jobs_after_close()


def test_a_login_whose_host_key_is_unknown_is_refused(
    lab: SlurmLab, login_node: tuple[Lab, Host], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    ssh_lab, login = login_node
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    slurm = sky.Slurm(login=login.spec, key_file=str(ssh_lab.client_key), known_hosts=str(empty), quiet=True)
    with (
        pytest.raises(sky.ProvisionError, match="host key is not trusted"),
        sky.ComputePool(provider=slurm, nodes=2),
    ):
        pass
    assert lab.jobs() == []


def interpreter() -> str:
    return sys.executable


@pytest.mark.slow
def test_through_a_login_node_without_python_the_environment_is_built_on_the_shared_home(
    lab: SlurmLab, login_node: tuple[Lab, Host]
) -> None:
    ssh_lab, login = login_node
    events: list[str] = []
    slurm = sky.Slurm(
        login=login.spec,
        key_file=str(ssh_lab.client_key),
        known_hosts=str(ssh_lab.known_hosts),
        offline=True,  # the lab reaches no package index: the client ships the wheels
        time="10:00",
        progress=events.append,
    )
    for _ in range(2):  # built once, then found
        with sky.ComputePool(provider=slurm, nodes=2) as pool:
            interpreters = set(pool.broadcast(interpreter))
            seen = {(host, inode) for host, inode, _ in pool.broadcast(where)}
        assert seen == {(name, node.netns_inode()) for name, node in lab.nodes.items()}
        [python] = interpreters
        assert python.startswith(f"{login.home}/.skyward/envs/"), python
    phases = [line.split("]")[1].split(":")[0].strip() for line in events if line.startswith("[environment")]
    assert phases.count("installed") == 1 and phases.count("cached") == 1, events
    assert lab.jobs_after_close() == []
