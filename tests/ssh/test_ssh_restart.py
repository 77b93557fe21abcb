"""A worker that dies on a host that is still there is started again over the same SSH connection.

(A host whose link is cut stays lost: test_ssh_link_loss.py.)
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from proc_utils import ancestry
from sshd_lab import Lab

import skyward as sky

# Functions of this module travel by value (skyward.code_shipping): the nodes cannot import the test module.


@sky.compute
def where(x: int) -> tuple[int, int, int, list[str]]:
    return x * x, os.getpid(), os.stat("/proc/self/ns/net").st_ino, ancestry()


@sky.compute
def die(marker: str) -> None:
    print(f"{marker} in pid {os.getpid()}", file=sys.stderr, flush=True)
    os._exit(3)


def _wait_back(pool: sky.ComputePool, old_pid: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not (pool.total_slots == 2 and pool.nodes and pool.nodes[0].pid != old_pid):
        assert time.monotonic() < deadline, f"node not back: {pool.nodes}"
        time.sleep(0.05)


def test_a_killed_agent_comes_back_over_the_same_connection(lab: Lab, ssh_provider) -> None:
    alpha = lab.hosts["alpha"]
    with sky.ComputePool(
        provider=ssh_provider("alpha"), nodes=1, worker=sky.Worker(concurrency=2), max_task_crashes=2
    ) as pool:
        deployment = pool._deployment
        conn = deployment._nodes[0].conn  # type: ignore[union-attr]
        first = pool.nodes[0].pid
        started = time.monotonic()
        os.kill(first, signal.SIGKILL)
        _wait_back(pool, first)
        back_after = time.monotonic() - started
        assert deployment._nodes[0].conn is conn and not conn.is_closed()  # type: ignore[union-attr]
        second = pool.nodes[0].pid
        results = [f.result(timeout=60) for f in [where(i) > pool for i in range(6)]]
        assert [value for value, *_ in results] == [i * i for i in range(6)]
        assert {pid for _, pid, _, _ in results} == {second}  # thread slots: the new agent runs them
        assert {netns for _, _, netns, _ in results} == {alpha.netns_inode()}
        assert all("sshd" in chain for *_, chain in results)

        marker = f"ssh-poison-{os.getpid()}"
        started = time.monotonic()
        with pytest.raises(sky.WorkerCrashed) as caught:
            die(marker) >> pool
        to_error = time.monotonic() - started
        _wait_back(pool, second)
        to_full = time.monotonic() - started
        assert deployment._nodes[0].conn is conn  # type: ignore[union-attr]
        assert (where(5) >> pool)[0] == 25
    error = caught.value
    assert (error.exit_code, error.signal, error.crashes) == (3, None, 2)
    assert error.node == pool.cluster.pool_id + "-node-0"
    assert any(marker in line for line in error.output) and marker in str(error)
    print(
        f"\n[ssh] killed agent back after {back_after:.2f}s; poison task: WorkerCrashed after "
        f"{to_error:.2f}s, "
        f"slots full after {to_full:.2f}s"
    )
