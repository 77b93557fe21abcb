"""sky.VastAI pools that start and run work: the ``vastai`` SDK against a fake of VastAI's API whose instances are
the sshd lab's isolated hosts. Everything from the SSH key on is the real path; nothing is left on any exit
path."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from fake_vastai import API_KEY, FakeVast
from sshd_lab import Lab, node_python, wait_gone

import skyward as sky
from skyward.bootstrap import BootstrapEvent
from skyward.providers.rented.deployment import RentedDeployment

NOTHING: dict[str, list[int]] = {"instances": [], "ssh_keys": []}


@pytest.fixture
def vast(lab_keys: Lab) -> Iterator[FakeVast]:
    hosts = [lab_keys.hosts["node-a"], lab_keys.hosts["node-b"]]
    fake = FakeVast([h.address for h in hosts], lab_keys.authorized_keys).start()
    yield fake
    fake.stop()


def provider(fake: FakeVast, **overrides: Any) -> sky.VastAI:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "api_url": fake.url,
        "python": node_python(),
        "ssh_timeout": 30,
        "quiet": True,
        "ssh_options": {"offline": True, "connect_timeout": 10, "forward_output": False},
    }
    settings.update(overrides)
    return sky.VastAI(**settings)


def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "home": os.environ["HOME"], "netns": os.stat("/proc/self/ns/net").st_ino}


def test_a_pool_runs_on_the_cheapest_offers_and_leaves_nothing(cloud_lab: Lab, vast: FakeVast) -> None:
    with sky.ComputePool(
        provider=provider(vast), nodes=2, cpu=8, memory="24GB", accelerator="RTX_4090"
    ) as pool:
        results = pool.broadcast(where)
        deployment = pool._deployment
        assert isinstance(deployment, RentedDeployment)
        during = vast.left()
        pids = {node.pid for node in pool.nodes}
        known_hosts = (deployment.workdir / "known_hosts").read_text()
    hosts = [cloud_lab.hosts["node-a"], cloud_lab.hosts["node-b"]]
    assert sorted(r["netns"] for r in results) == sorted(h.netns_inode() for h in hosts)
    assert {r["home"] for r in results} == {str(h.home) for h in hosts}
    assert {r["pid"] for r in results} == pids
    # The search asked for what the pool asked, and the two cheapest fitting offers were rented (13 is too small).
    (search,) = vast.searches
    assert search["gpu_name"] == {"eq": "RTX 4090"} and search["num_gpus"] == {"gte": 1}
    assert search["cpu_cores_effective"] == {"gte": 8} and search["order"] == [["dph_total", "asc"]]
    assert [c["offer"] for c in vast.created] == [12, 14]
    assert all(c["label"] == f"skyward-{pool.pool_id}" and c["runtype"] == "ssh_proxy" for c in vast.created)
    assert all(
        c["image"] == f"python:{os.sys.version_info.major}.{os.sys.version_info.minor}" for c in vast.created
    )
    assert len(during["instances"]) == 2 and len(during["ssh_keys"]) == 1
    for host in hosts:
        assert f"{host.address} {' '.join(host.host_key_pub.split()[:2])}" in known_hosts
    calls = vast.calls
    assert calls[:4] == [
        "POST /api/v0/bundles/",
        "POST /api/v0/ssh/",
        "PUT /api/v0/asks/{id}/",
        "PUT /api/v0/asks/{id}/",
    ]
    assert set(calls[4:-4]) == {"GET /api/v0/instances/{id}/"}
    assert calls[-4:] == [
        "GET /api/v1/instances/",
        "DELETE /api/v0/instances/{id}/",
        "DELETE /api/v0/instances/{id}/",
        "DELETE /api/v0/ssh/{id}/",
    ]
    assert vast.left() == NOTHING
    assert not wait_gone(pids)
    assert not deployment.workdir.exists()


def test_the_watchdog_is_the_onstart_script_and_is_valid_bash(vast: FakeVast, tmp_path: Any) -> None:
    with sky.ComputePool(provider=provider(vast)) as pool:
        pool_id = pool.pool_id
    (created,) = vast.created
    script = created["onstart"]
    assert f"skyward pool {pool_id}" in script and "CONTAINER_API_KEY" in script
    assert f"SERVER = {vast.url!r}" in script  # the watchdog calls the API this pool used
    path = tmp_path / "onstart.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert vast.left() == NOTHING


def test_an_offer_taken_meanwhile_is_skipped_for_the_next(vast: FakeVast) -> None:
    vast.taken = {13}  # the cheapest
    with sky.ComputePool(provider=provider(vast)) as pool:
        assert len(pool.broadcast(where)) == 1
    assert [c["offer"] for c in vast.created] == [13, 12]
    assert vast.left() == NOTHING


def test_an_exception_inside_the_block_leaves_nothing(vast: FakeVast) -> None:
    with pytest.raises(RuntimeError, match="inside the block"):
        with sky.ComputePool(provider=provider(vast), nodes=2) as pool:
            pids = {node.pid for node in pool.nodes}
            raise RuntimeError("raised inside the block")
    assert vast.left() == NOTHING
    assert not wait_gone(pids)


def test_ctrl_c_inside_the_block_leaves_nothing(vast: FakeVast) -> None:
    with pytest.raises(KeyboardInterrupt):
        with sky.ComputePool(provider=provider(vast)) as pool:
            pids = {node.pid for node in pool.nodes}
            raise KeyboardInterrupt
    assert vast.left() == NOTHING
    assert not wait_gone(pids)


def test_ctrl_c_during_the_bootstrap_leaves_nothing(vast: FakeVast) -> None:
    def ctrl_c_at_probe(event: BootstrapEvent) -> None:
        if event.phase == "probe":
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider(vast, progress=ctrl_c_at_probe)):
        pytest.fail("the pool must not start")
    assert "DELETE /api/v0/instances/{id}/" in vast.calls
    assert vast.left() == NOTHING


def test_a_second_instance_that_never_answers_ssh_fails_the_pool_and_leaves_nothing(vast: FakeVast) -> None:
    vast.unreachable = {1}
    with pytest.raises(sky.ProvisionError, match=r"1 of 2 vastai instance\(s\) did not answer SSH within 3s"):
        with sky.ComputePool(provider=provider(vast, ssh_timeout=3), nodes=2):
            pytest.fail("the pool must not start")
    assert vast.calls.count("PUT /api/v0/asks/{id}/") == 2
    assert vast.left() == NOTHING


def test_too_few_offers_fail_before_anything_is_rented(vast: FakeVast) -> None:
    with pytest.raises(sky.ProvisionError, match=r"VastAI has 1 offer\(s\) with accelerator='H100_SXM'"):
        with sky.ComputePool(provider=provider(vast), nodes=2, accelerator="H100_SXM"):
            pass
    assert vast.calls == ["POST /api/v0/bundles/"]


def test_a_wrong_api_key_is_a_clear_error(vast: FakeVast) -> None:
    with pytest.raises(sky.ProvisionError, match="VastAI refused searching offers: HTTP 401"):
        with sky.ComputePool(provider=provider(vast, api_key="wrong")):
            pass
    assert vast.left() == NOTHING


def test_ctrl_c_while_an_instance_is_rented_leaves_nothing(vast: FakeVast) -> None:
    # Ctrl-C after VastAI rented the offer and before the instance's id came back: only the cloud knows of it.
    vast.on_create = lambda: os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider(vast)):
        pytest.fail("the pool must not start")
    assert vast.calls.count("PUT /api/v0/asks/{id}/") == 1
    assert "GET /api/v0/instances/{id}/" not in vast.calls  # found by the listing, by its label
    assert vast.left() == NOTHING


def _power_off(vast: FakeVast, instance_id: int, key: str) -> subprocess.CompletedProcess[str]:
    """The watchdog's last step, run here as the instance would run it (its id and key in its environment)."""
    from skyward.providers.vastai.onstart import power_off_command

    env = dict(os.environ, CONTAINER_ID=str(instance_id), CONTAINER_API_KEY=key)
    command = power_off_command(node_python(), vast.url)
    return subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60, check=True
    )


def test_the_watchdog_destroys_its_instance_with_the_instance_key(lab_keys: Lab) -> None:
    vast = FakeVast([], lab_keys.authorized_keys).start()
    try:
        vast.instances[7] = {"id": 7, "actual_status": "running", "intended_status": "running"}
        vast.container_keys[7] = "scoped-7"
        _power_off(vast, 7, "scoped-7")
        assert vast.calls == ["DELETE /api/v0/instances/{id}/"] and 7 not in vast.instances
        # Where the instance's key may not destroy, it stops the instance (no more GPU billed).
        vast.instances[8] = {"id": 8, "actual_status": "running", "intended_status": "running"}
        vast.container_keys[8] = "scoped-8"
        vast.scoped_may_destroy = False
        result = _power_off(vast, 8, "scoped-8")
        assert vast.calls[1:] == ["DELETE /api/v0/instances/{id}/", "PUT /api/v0/instances/{id}/"]
        assert vast.instances[8]["intended_status"] == "stopped" and "DELETE failed" in result.stdout
    finally:
        vast.stop()
