"""A host whose network link is cut mid-run: its tasks move to the survivors, and the call completes exactly."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from joblib import Parallel, delayed
from sshd_lab import IP, Lab

import skyward as sky

# Functions of this module travel by value (skyward.code_shipping): the nodes cannot import the test module.


def step(index: int) -> tuple[int, int]:
    time.sleep(0.05)
    return index, os.stat("/proc/self/ns/net").st_ino


def _veth_in(netns: str) -> str:
    listing = subprocess.run(
        [IP, "-n", netns, "-o", "link", "show"], capture_output=True, text=True, check=True
    )
    names = [line.split(":")[1].strip().split("@")[0] for line in listing.stdout.splitlines()]
    return next(name for name in names if name.startswith("skn"))


def _set_link(netns: str, state: str) -> None:
    subprocess.run([IP, "-n", netns, "link", "set", _veth_in(netns), state], check=True)


def test_cutting_a_hosts_link_mid_run_moves_its_tasks_to_the_survivor(lab: Lab, ssh_provider) -> None:  # type: ignore[no-untyped-def]
    beta = lab.hosts["beta"]
    assert beta.netns is not None
    provider = ssh_provider("alpha", "beta")
    try:
        with sky.ComputePool(
            provider=provider,
            nodes=2,
            worker=sky.Worker(concurrency=2),
            lease=4.0,
            plugins=[sky.plugins.joblib()],
        ) as pool:
            assert pool.total_slots == 4
            cut = threading.Timer(1.0, _set_link, (beta.netns, "down"))
            cut.start()
            started = time.monotonic()
            results = Parallel(n_jobs=-1, batch_size=1)(delayed(step)(i) for i in range(200))
            elapsed = time.monotonic() - started
            cut.join()
            assert sorted(index for index, _ in results) == list(range(200))
            where = {inode for _, inode in results}
            assert lab.hosts["alpha"].netns_inode() in where and beta.netns_inode() in where  # both worked
            assert pool.total_slots == 2, "the cut node still counts"
            assert [n.name for n in pool.nodes] == [pool.nodes[0].name] and len(pool.nodes) == 1
            assert elapsed < 30, f"took {elapsed:.1f}s: the lost node was not detected in time"
    finally:
        _set_link(beta.netns, "up")
