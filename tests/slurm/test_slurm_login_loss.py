"""``login=``: when the SSH connection to the login node drops, Slurm gets the job back and the pool fails
with a reason that says so, without hanging."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest
from slurm_lab import SlurmLab
from sshd_lab import Host, Lab

import skyward as sky


def _stat(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], int(tail.split()[1])


def session_processes(sshd: int) -> list[int]:
    """The per-connection sshd processes under the listening sshd `sshd` (not the commands they run)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                name, parent = _stat(int(entry))
            except OSError:
                continue
            if name.startswith("sshd"):
                parents[int(entry)] = parent
    found, frontier = [], {sshd}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def slow(seconds: float) -> str:
    time.sleep(seconds)
    return socket.gethostname()


def test_a_dropped_login_connection_gives_the_job_back_and_fails_the_pool_clearly(
    lab: SlurmLab, login_node: tuple[Lab, Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    ssh_lab, login = login_node
    monkeypatch.delenv("SLURM_CONF")  # only the login node's sessions reach the cluster
    slurm = sky.Slurm(
        login=login.spec,
        key_file=str(ssh_lab.client_key),
        known_hosts=str(ssh_lab.known_hosts),
        python=sys.executable,
        time="10:00",
        quiet=True,
    )
    started = time.monotonic()
    with sky.ComputePool(provider=slurm, nodes=2) as pool:
        assert sorted(pool.broadcast(socket.gethostname)) == sorted(lab.nodes)
        [job] = lab.jobs()
        running = [pool.submit(slow, 60) for _ in range(4)]
        sessions = session_processes(login.process.pid)
        assert sessions, "no sshd session to cut"
        # The connection ends as if the network had dropped it: no goodbye from either end.
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        # The pool is still open: only the dead man's switch (salloc's cat on the lost session) can end the job.
        assert lab.jobs_after_close(timeout=60) == [], f"job {job} outlived the login connection"
        for future in running:
            with pytest.raises(sky.NodeLost, match="SSH connection to the login node .* was lost") as lost:
                future.result(timeout=120)
            assert f"gives slurm job {job} back" in str(lost.value)
        with pytest.raises(sky.NodeLost, match="every node of the pool is lost"):
            pool.submit(socket.gethostname).result(timeout=60)
    assert time.monotonic() - started < 120
    assert lab.node_states() == {name: "idle" for name in lab.nodes}
