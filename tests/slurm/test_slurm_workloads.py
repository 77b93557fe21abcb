"""joblib, a scikit-learn grid search, and a node set DOWN mid-run, on the lab's two compute nodes."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from joblib import Parallel, delayed
from slurm_lab import SlurmLab

import skyward as sky
from skyward.providers.slurm import Slurm

# Functions of this module travel by value (skyward.code_shipping): the nodes cannot import the test module.


def step(index: int, pause: float = 0.0) -> tuple[int, str, int]:
    time.sleep(pause)
    return index, socket.gethostname(), os.stat("/proc/self/ns/net").st_ino


def provider() -> Slurm:
    return Slurm(time="10:00", start_timeout=60, quiet=True)


def test_joblib_parallel_runs_on_both_compute_nodes(lab: SlurmLab) -> None:
    with sky.ComputePool(
        provider=provider(), nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]
    ):
        results = Parallel(n_jobs=-1)(delayed(step)(i) for i in range(40))
    assert [index for index, _, _ in results] == list(range(40))
    assert {(host, inode) for _, host, inode in results} == {
        (n, node.netns_inode()) for n, node in lab.nodes.items()
    }
    assert lab.jobs_after_close() == []


def test_a_grid_search_runs_on_the_compute_nodes(lab: SlurmLab) -> None:
    from sklearn.datasets import load_iris
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = load_iris(return_X_y=True)
    record = lab.root / "grid-search-scorers.txt"  # the lab's nodes share this machine's files
    record.write_text("")
    record.chmod(0o666)

    def scorer(estimator, X_test, y_test) -> float:  # type: ignore[no-untyped-def]
        with open(record, "a") as f:
            f.write(f"{socket.gethostname()} {os.stat('/proc/self/ns/net').st_ino}\n")
        return float(accuracy_score(y_test, estimator.predict(X_test)))

    grid = {"C": [0.25, 0.5, 1.0, 2.0], "gamma": ["scale", 0.1]}
    with sky.ComputePool(
        provider=provider(), nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.sklearn()]
    ):
        search = GridSearchCV(SVC(), grid, cv=3, scoring=scorer, n_jobs=-1).fit(X, y)
    local = GridSearchCV(SVC(), grid, cv=3).fit(X, y)
    assert search.best_params_ == local.best_params_
    seen = {tuple(line.split()) for line in Path(record).read_text().splitlines()}
    assert seen == {(n, str(node.netns_inode())) for n, node in lab.nodes.items()}
    assert lab.jobs_after_close() == []


def test_a_node_set_down_mid_run_hands_its_tasks_to_the_other(lab: SlurmLab) -> None:
    def down() -> None:
        lab.command("scontrol", "update", "nodename=sky2", "state=down", "reason=skyward-test")

    with sky.ComputePool(
        provider=provider(),
        nodes=2,
        worker=sky.Worker(concurrency=2),
        lease=5.0,
        plugins=[sky.plugins.joblib()],
    ) as pool:
        assert {n.host for n in pool.nodes} == {"sky1", "sky2"}
        [job] = lab.jobs()
        timer = threading.Timer(1.5, down)
        timer.start()
        results = Parallel(n_jobs=-1, batch_size=1)(delayed(step)(i, 0.2) for i in range(60))
        timer.join()
        assert sorted(index for index, _, _ in results) == list(range(60))
        hosts = [host for _, host, _ in results]
        assert "sky2" in hosts, "sky2 did no work before it went down"
        assert hosts[-10:] == ["sky1"] * 10, "the last tasks did not all run on the survivor"
        assert [n.host for n in pool.nodes] == ["sky1"], "the DOWN node still counts"
        assert lab.jobs() == [job], "the job (and the survivor) must outlive the lost node"
    assert lab.jobs_after_close() == []


if not hasattr(sky.plugins, "joblib"):  # pragma: no cover - the workspace installs both plugins
    pytest.skip("the joblib plugin is not installed", allow_module_level=True)


def pid_and_host() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def test_a_killed_agent_is_started_again_in_a_new_step_on_its_node(lab: SlurmLab) -> None:
    with sky.ComputePool(provider=provider(), nodes=2, worker=sky.Worker(concurrency=1)) as pool:
        [job] = lab.jobs()
        first = pool.nodes[1].pid
        host = pool.nodes[1].host
        os.kill(first, signal.SIGKILL)  # the lab's nodes share this machine's process table
        deadline = time.monotonic() + 90
        while not (len(pool.nodes) == 2 and pool.nodes[1].pid != first) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(pool.nodes) == 2, "node 1 was given up, not restarted"
        second = pool.nodes[1].pid
        assert second != first and pool.nodes[1].host == host
        assert pool.submit_to(1, pid_and_host).result(timeout=30) == (second, host)
        assert lab.jobs() == [job], "the restart must happen inside the pool's job"
        steps = lab.command("squeue", "-h", "-s", "-j", job, "-o", "%i").stdout.split()
        assert len(steps) == 2, steps  # one live step per node: the killed agent's step is gone
    assert lab.jobs_after_close() == []
