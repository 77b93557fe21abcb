"""sky.Verda pools that start and run work: the ``verda`` SDK against a fake of Verda's API whose instances are
the sshd lab's isolated hosts. Everything from the SSH key on is the real path (host keys pinned at first use,
the SSH provider's bootstrap, workers, tasks, teardown); nothing is left on any exit path."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from fake_verda import CLIENT_ID, CLIENT_SECRET, FakeVerda
from sshd_lab import Lab, node_python, wait_gone

import skyward as sky
from skyward.bootstrap import BootstrapEvent
from skyward.providers.rented.deployment import RentedDeployment

NOTHING = {"instances": [], "volumes": [], "sshkeys": [], "scripts": []}


@pytest.fixture
def verda(lab_keys: Lab) -> Iterator[FakeVerda]:
    hosts = [lab_keys.hosts["node-a"], lab_keys.hosts["node-b"]]
    fake = FakeVerda([h.address for h in hosts], lab_keys.authorized_keys).start()
    yield fake
    fake.stop()


def provider(fake: FakeVerda, **overrides: Any) -> sky.Verda:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "api_url": fake.url,
        "python": node_python(),
        "ssh_timeout": 30,
        "quiet": True,
        # The lab's hosts reach no index: ship wheels.
        "ssh_options": {"offline": True, "connect_timeout": 10, "forward_output": False},
    }
    settings.update(overrides)
    return sky.Verda(**settings)


def where() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "home": os.environ["HOME"],
        "netns": os.stat("/proc/self/ns/net").st_ino,
        "node": os.environ.get("SKYWARD_NODE"),
    }


def test_a_pool_runs_on_the_instances_and_leaves_nothing(cloud_lab: Lab, verda: FakeVerda) -> None:
    with sky.ComputePool(provider=provider(verda), nodes=2, cpu=4, memory="16GB") as pool:
        results = pool.broadcast(where)
        deployment = pool._deployment
        assert isinstance(deployment, RentedDeployment)
        during = verda.left()
        pids = {node.pid for node in pool.nodes}
        known_hosts = (deployment.workdir / "known_hosts").read_text()
    hosts = [cloud_lab.hosts["node-a"], cloud_lab.hosts["node-b"]]
    # Tasks ran on the two instances: their namespaces and homes, in workers the SSH provider started there.
    assert sorted(r["netns"] for r in results) == sorted(h.netns_inode() for h in hosts)
    assert {r["home"] for r in results} == {str(h.home) for h in hosts}
    assert os.stat("/proc/self/ns/net").st_ino not in {r["netns"] for r in results}
    assert {r["pid"] for r in results} == pids
    # The cheapest type with >= 4 vCPU and 16 GB, spot first (the default allocation), with its Ubuntu image.
    assert [b["instance_type"] for b in verda.created] == ["CPU.4V.16G"] * 2
    assert all(b["is_spot"] and b["image"] == "ubuntu-24.04" for b in verda.created)
    assert [b["hostname"] for b in verda.created] == [
        f"skyward-{pool.pool_id}-0",
        f"skyward-{pool.pool_id}-1",
    ]
    # The pool's own key and its watchdog were registered, and each instance carried both.
    assert len(during["instances"]) == 2 and len(during["sshkeys"]) == 1 and len(during["scripts"]) == 1
    assert all(b["ssh_key_ids"] == during["sshkeys"] for b in verda.created)
    assert all(b["startup_script_id"] == during["scripts"][0] for b in verda.created)
    # Each host's own key was pinned for its address (sshd on port 22).
    for host in hosts:
        assert f"{host.address} {' '.join(host.host_key_pub.split()[:2])}" in known_hosts
    # The calls, in order, and then nothing: instances, OS volumes, key, script, workers, local key.
    calls = verda.calls
    assert calls[:7] == [
        "POST /oauth2/token",
        "GET /instance-types",
        "GET /instance-availability",
        "GET /instance-availability",
        "POST /sshkeys",
        "POST /scripts",
        "POST /instances",
    ]
    assert calls.count("POST /instances") == 2
    assert calls[-4:] == ["GET /instances", "PUT /instances", "DELETE /scripts/{id}", "DELETE /sshkeys/{id}"]
    assert verda.left() == NOTHING
    assert not wait_gone(pids)
    assert not deployment.workdir.exists()


def test_the_watchdog_is_the_startup_script(verda: FakeVerda) -> None:
    scripts: list[str] = []

    def keep(event: BootstrapEvent) -> None:
        scripts.extend(s["script"] for s in verda.scripts.values())

    with sky.ComputePool(provider=provider(verda, progress=keep)) as pool:
        pool_id = pool.pool_id
    assert scripts and "skyward-watchdog" in scripts[0] and f"skyward pool {pool_id}" in scripts[0]
    assert 'shutdown -h now "skyward: $reason"' in scripts[0]
    assert verda.left() == NOTHING


def test_an_exception_inside_the_block_leaves_nothing(verda: FakeVerda) -> None:
    with pytest.raises(RuntimeError, match="inside the block"):
        with sky.ComputePool(provider=provider(verda), nodes=2) as pool:
            pids = {node.pid for node in pool.nodes}
            raise RuntimeError("raised inside the block")
    assert verda.left() == NOTHING
    assert not wait_gone(pids)


def test_ctrl_c_inside_the_block_leaves_nothing(verda: FakeVerda) -> None:
    with pytest.raises(KeyboardInterrupt):
        with sky.ComputePool(provider=provider(verda)) as pool:
            pids = {node.pid for node in pool.nodes}
            raise KeyboardInterrupt
    assert verda.left() == NOTHING
    assert not wait_gone(pids)


def test_ctrl_c_during_the_bootstrap_leaves_nothing(verda: FakeVerda) -> None:
    def ctrl_c_at_probe(event: BootstrapEvent) -> None:
        if event.phase == "probe":
            os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT: the main thread waits on the bootstrap

    with (
        pytest.raises(KeyboardInterrupt),
        sky.ComputePool(provider=provider(verda, progress=ctrl_c_at_probe)),
    ):
        pytest.fail("the pool must not start")
    assert "PUT /instances" in verda.calls
    assert verda.left() == NOTHING


def test_a_second_instance_that_never_answers_ssh_fails_the_pool_and_leaves_nothing(verda: FakeVerda) -> None:
    verda.unreachable = {1}
    with pytest.raises(sky.ProvisionError, match=r"1 of 2 verda instance\(s\) did not answer SSH within 3s"):
        with sky.ComputePool(provider=provider(verda, ssh_timeout=3), nodes=2):
            pytest.fail("the pool must not start")
    assert verda.calls.count("POST /instances") == 2
    assert verda.left() == NOTHING


def test_nothing_available_fails_before_anything_is_created(verda: FakeVerda) -> None:
    verda.availability = {spot: [{"location_code": "FIN-01", "availabilities": []}] for spot in (False, True)}
    with pytest.raises(sky.ProvisionError, match="is available spot or on-demand now"):
        with sky.ComputePool(provider=provider(verda), accelerator="H100"):
            pass
    assert "POST /sshkeys" not in verda.calls and verda.left() == NOTHING


def test_wrong_credentials_are_a_clear_error(verda: FakeVerda) -> None:
    with pytest.raises(sky.ProvisionError, match="Verda refused signing in"):
        with sky.ComputePool(provider=provider(verda, client_secret="wrong")):
            pass
    assert verda.calls == ["POST /oauth2/token"]


def test_ctrl_c_while_an_instance_is_created_leaves_nothing(verda: FakeVerda) -> None:
    # Ctrl-C after Verda created the instance and before its id came back: only the cloud knows of it.
    verda.on_create = lambda: os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider(verda)):
        pytest.fail("the pool must not start")
    assert verda.calls.count("POST /instances") == 1
    assert "GET /instances/{id}" not in verda.calls  # the id was never read: the listing found the instance
    assert verda.left() == NOTHING
