"""A pool of two SSH hosts without package index access: offline bootstrap, tasks, joblib, cache, teardown."""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from proc_utils import ancestry
from sshd_lab import Lab, listening_addresses, node_python, wait_gone

import skyward as sky

# Functions of this module travel by value (skyward.code_shipping): the nodes cannot import the test module
# (they have only the installed packages, not the client's source tree).


def where(x: int) -> dict[str, object]:
    return {
        "square": x * x,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "node": os.environ.get("SKYWARD_NODE"),
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "home": os.environ["HOME"],
        "ancestry": ancestry(),
        "executable": sys.executable,
        "image_env": os.environ.get("SKYWARD_TEST_MARK"),
    }


square_where = sky.compute(where)


@sky.compute
def runtime_on_node() -> dict[str, str | None]:
    import importlib.util
    from importlib.metadata import version

    found = {name: version(name) for name in RUNTIME}
    found["asyncssh"] = "installed" if importlib.util.find_spec("asyncssh") else None
    return found


RUNTIME = ("casty", "cloudpickle", "lz4", "pluggy", "packaging")


@sky.compute
def shout(text: str) -> str:
    print(text, flush=True)
    return text


IMAGE = sky.Image(env={"SKYWARD_TEST_MARK": "from-image-env"})


def assert_ran_on(result: dict[str, object], host_home: str, netns: int) -> None:
    """The task ran under sshd, in the host's network namespace, with the host's home and its own env."""
    assert "sshd" in result["ancestry"], result["ancestry"]
    assert result["netns"] == netns
    assert result["home"] == host_home
    assert str(result["executable"]).startswith(f"{host_home}/.skyward/envs/")
    assert result["pid"] != os.getpid()


def test_offline_pool_runs_tasks_on_both_hosts_then_tears_down(lab: Lab, ssh_provider, events, capfd) -> None:
    alpha, beta = lab.hosts["alpha"], lab.hosts["beta"]
    provider = ssh_provider("alpha", "beta")
    started = time.monotonic()
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=2), image=IMAGE) as pool:
        first_start = time.monotonic() - started
        nodes = pool.nodes
        assert [n.host for n in nodes] == [alpha.address, beta.address]

        # Broadcast: one result per node, in node order, each from its own host.
        per_node = square_where(3) @ pool
        assert [r["square"] for r in per_node] == [9, 9]
        assert_ran_on(per_node[0], str(alpha.home), alpha.netns_inode())
        assert_ran_on(per_node[1], str(beta.home), beta.netns_inode())
        assert [r["node"] for r in per_node] == [n.name for n in nodes]
        assert {r["pid"] for r in per_node} == {n.pid for n in nodes}
        assert {r["image_env"] for r in per_node} == {"from-image-env"}

        # Plain calls spread over both hosts, results correct.
        futures = [square_where(i) > pool for i in range(40)]
        results = [f.result(timeout=60) for f in futures]
        assert [r["square"] for r in results] == [i * i for i in range(40)]
        assert {r["netns"] for r in results} == {alpha.netns_inode(), beta.netns_inode()}

        # The worker listens on 127.0.0.1 inside its namespace; the tunnel listens on 127.0.0.1 here.
        deployment = pool._deployment
        assert deployment is not None
        for started_node in deployment.nodes:
            host, _, port = started_node.dial.rpartition(":")
            assert host == "127.0.0.1"
            assert listening_addresses(int(port)) == {"127.0.0.1"}
            assert listening_addresses(started_node.port, pid=started_node.info.pid) == {"127.0.0.1"}
        tunnels = [int(n.dial.rpartition(":")[2]) for n in deployment.nodes]

        # What a task prints comes back prefixed with its node.
        shout("hello from a node") >> pool
        deadline = time.monotonic() + 10
        seen = ""
        while "hello from a node" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capfd.readouterr().out
        assert any(
            line.startswith("[") and line.endswith("] hello from a node") for line in seen.splitlines()
        ), seen

        worker_pids = {n.pid for n in nodes}
    assert not wait_gone(worker_pids), "workers still running after the pool closed"
    for port in tunnels:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    # Both hosts had no index: the client shipped the wheels.
    uploads = events.of("upload")
    assert len(uploads) == 2 and all("offline" in e.message for e in uploads), uploads
    assert len(events.of("installed")) == 2
    install_seconds = max(e.elapsed for e in events.of("ready"))

    # Second pool, same image, same hosts: the environments are found, nothing is installed or uploaded.
    events.clear()
    started = time.monotonic()
    with sky.ComputePool(provider=provider, nodes=2, worker=sky.Worker(concurrency=2), image=IMAGE) as pool:
        second_start = time.monotonic() - started
        again = square_where(5) @ pool
        assert [r["square"] for r in again] == [25, 25]
        assert_ran_on(again[0], str(alpha.home), alpha.netns_inode())
        # The worker's runtime is pinned to this client's versions; the client's SSH library stays here.
        expected = {name: version(name) for name in RUNTIME}
        assert runtime_on_node() @ pool == [{**expected, "asyncssh": None}] * 2
    phases = {e.phase for e in events.events}
    assert "cached" in phases and not phases & {"upload", "install", "installed"}, events.events
    assert len(events.of("cached")) == 2
    print(
        f"\nSSH offline pool start: first {first_start:.1f}s (node ready after {install_seconds:.1f}s), "
        f"cached second pool {second_start:.1f}s",
        file=sys.__stderr__,
    )
    assert second_start < first_start


def test_joblib_parallel_runs_on_the_ssh_hosts(lab: Lab, ssh_provider) -> None:
    joblib = pytest.importorskip("joblib")
    try:
        plugin = sky.plugins.joblib()
    except AttributeError as exc:
        pytest.skip(f"the joblib plugin is not installed: {exc}")
    alpha, beta = lab.hosts["alpha"], lab.hosts["beta"]
    with sky.ComputePool(
        provider=ssh_provider("alpha", "beta"), nodes=2, worker=sky.Worker(concurrency=2), plugins=[plugin]
    ):
        results = joblib.Parallel(n_jobs=-1)(joblib.delayed(where)(i) for i in range(30))
    assert [r["square"] for r in results] == [i * i for i in range(30)]
    assert {r["netns"] for r in results} == {alpha.netns_inode(), beta.netns_inode()}
    for result in results:
        assert "sshd" in result["ancestry"]
        assert result["home"] in (str(alpha.home), str(beta.home))


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError], ids=["ctrl-c", "error"])
def test_leaving_the_block_early_stops_the_workers_and_tunnels(lab: Lab, ssh_provider, failure) -> None:
    pids: set[int] = set()
    tunnels: list[int] = []
    provider = ssh_provider("alpha", "beta")
    with pytest.raises(failure), sky.ComputePool(provider=provider, nodes=2, image=IMAGE) as pool:
        pids = {n.pid for n in pool.nodes}
        tunnels = [int(n.dial.rpartition(":")[2]) for n in pool._deployment.nodes]
        assert len(pids) == 2
        raise failure
    assert not wait_gone(pids)
    assert all(not listening_addresses(port) for port in tunnels)


def test_a_killed_worker_is_seen_dead_and_its_tasks_go_elsewhere(lab: Lab, ssh_provider) -> None:
    # restart_nodes=False: the killed worker stays dead (its restart: test_ssh_restart.py)
    provider = ssh_provider("alpha", "beta")
    with sky.ComputePool(provider=provider, nodes=2, image=IMAGE, restart_nodes=False) as pool:
        deployment = pool._deployment
        assert deployment is not None and deployment.is_alive(0) and deployment.is_alive(1)
        started = time.perf_counter()
        for _ in range(1000):
            deployment.is_alive(0)
        assert time.perf_counter() - started < 0.1  # the heartbeat calls it on the I/O loop: it must be cheap
        os.kill(pool.nodes[0].pid, 9)
        deadline = time.monotonic() + 10
        while deployment.is_alive(0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not deployment.is_alive(0) and deployment.is_alive(1)
        results = [f.result(timeout=60) for f in [square_where(i) > pool for i in range(6)]]
        assert {r["netns"] for r in results} == {lab.hosts["beta"].netns_inode()}


def test_progress_is_printed_per_node_unless_quiet(lab: Lab, ssh_provider, capfd) -> None:
    with sky.ComputePool(provider=ssh_provider("alpha", progress=None), nodes=1, image=IMAGE) as pool:
        name = pool.nodes[0].name
    printed = capfd.readouterr().err
    for phase in ("connect", "probe", "start", "ready"):
        assert f"skyward [{name} {lab.hosts['alpha'].spec}] {phase}" in printed, printed
    with sky.ComputePool(provider=ssh_provider("alpha", progress=None, quiet=True), nodes=1, image=IMAGE):
        pass
    assert "skyward [" not in capfd.readouterr().err


def test_process_slots_of_a_node_stop_with_it(lab: Lab, ssh_provider) -> None:
    worker = sky.Worker(concurrency=2, executor="process")
    with sky.ComputePool(provider=ssh_provider("alpha"), nodes=1, worker=worker, image=IMAGE) as pool:
        agent = pool.nodes[0].pid
        results = [f.result(timeout=60) for f in [square_where(i) > pool for i in range(6)]]
        assert [r["square"] for r in results] == [i * i for i in range(6)]
        slots = {r["pid"] for r in results}
        assert agent not in slots and {r["ppid"] for r in results} == {agent}
        assert all("sshd" in r["ancestry"] for r in results)
    assert not wait_gone(slots | {agent})


def test_doctor_then_prewarm_then_doctor_sees_the_environment_built(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    from skyward.cli import main

    host = lab.hosts["alpha"]
    common = [
        "--key-file",
        str(lab.client_key),
        "--known-hosts",
        str(lab.known_hosts),
        "--python",
        node_python(),
    ]
    pip = ["--pip", "packaging"]  # an image of its own: no other test has built this environment
    assert main(["doctor", host.spec, *common, *pip]) == 0
    before = capsys.readouterr().out
    assert f"{host.spec}: ok" in before and "host key verified" in before
    assert re.search(r"python +/\S+ 3\.\d+", before) and re.search(r"disk +[\d.]+ GiB free", before)
    assert re.search(r"image .* -> environment \S+: (not built yet|built)", before)

    assert main(["prewarm", host.spec, *common, *pip]) == 0
    assert "environment ready on 1 host(s)" in capsys.readouterr().out
    assert main(["doctor", host.spec, *common, *pip]) == 0
    assert "built (a pool starts without installing)" in capsys.readouterr().out


def test_doctor_reports_a_host_it_cannot_verify(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skyward.cli import main

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = lab.hosts["alpha"]
    assert main(["doctor", host.spec, "--key-file", str(lab.client_key), "--known-hosts", str(empty)]) == 1
    out = capsys.readouterr().out
    assert f"{host.spec}: PROBLEM" in out and "cannot connect" in out
