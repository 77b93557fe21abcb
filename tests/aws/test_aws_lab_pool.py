"""AWS pools that start: moto's instances, reached at the real sshd hosts of the SSH tests' lab.

Each instance's address (the provider's ``address`` hook) is a lab host, whose ``authorized_keys`` receives the
pool's key pair as cloud-init would put it on a real instance. From there on everything is the real path:
host keys (pinned at first use, or read from the console output), the SSH provider's bootstrap, the worker,
tasks, and teardown. Exceptions and Ctrl-C inside the block, and Ctrl-C during the bootstrap, leave nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CallRecorder, nothing_left, pool_ids_seen, tagged
from sshd_lab import Host, Lab, node_python, unavailable_reason, wait_gone

import skyward as sky
from skyward.bootstrap import BootstrapEvent
from skyward.providers.aws import AWSDeployment


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        lab.add_loopback_host("aws-a")
        lab.add_loopback_host("aws-b")
        yield lab
    finally:
        lab.close()


class LabAddresses:
    """The ``address`` hook of these tests: instance ``i`` of a pool is reached at lab host ``i``."""

    def __init__(self, lab: Lab, ec2: Any, names: list[str]) -> None:
        self._lab = lab
        self._ec2 = ec2
        self.hosts: list[Host] = [lab.hosts[name] for name in names]
        self.assigned: dict[str, Host] = {}

    def __call__(self, instance: Any) -> str:
        if instance["InstanceId"] not in self.assigned:
            if not self.assigned:
                self._install_key_pair(instance["KeyName"])
            self.assigned[instance["InstanceId"]] = self.hosts[len(self.assigned)]
        host = self.assigned[instance["InstanceId"]]
        return f"{host.address}:{host.port}"

    def _install_key_pair(self, name: str) -> None:
        """What cloud-init does at first boot: authorize the launch's key pair (as AWS holds it) for the login."""
        (pair,) = self._ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
        with open(self._lab.authorized_keys, "a") as keys:
            keys.write(pair["PublicKey"].strip() + "\n")


@pytest.fixture
def addresses(lab: Lab, ec2: Any) -> Iterator[Any]:
    original = lab.authorized_keys.read_text()

    def make(*names: str) -> LabAddresses:
        return LabAddresses(lab, ec2, list(names))

    yield make
    lab.authorized_keys.write_text(original)  # the pool's key is no longer wanted


def lab_provider(moto_ami: str, route: LabAddresses, **overrides: Any) -> sky.AWS:
    settings: dict[str, Any] = {
        "ami": moto_ami,
        "instance_type": "c5.large",
        "ssh_cidr": "127.0.0.1/32",
        "address": route,
        "user": "root",
        "python": node_python(),
        "ssh_timeout": 30,
        "host_key_wait": 0,
        # The lab's hosts share this machine's packages: ship wheels rather than reach for an index.
        "ssh_options": {"offline": True, "connect_timeout": 10, "forward_output": False},
    }
    settings.update(overrides)
    return sky.AWS(**settings)


def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "home": os.environ["HOME"], "node": os.environ.get("SKYWARD_NODE")}


def worker_processes() -> set[int]:
    """What the node watchdog looks for (its pattern), on this machine."""
    found = subprocess.run(
        ["pgrep", "-f", "--", "-m skyward.worker"], capture_output=True, text=True, check=False
    )
    return {int(pid) for pid in found.stdout.split()}


def test_an_exception_inside_a_working_pool_leaves_nothing(
    lab: Lab,
    addresses: Any,
    aws_calls: CallRecorder,
    ec2: Any,
    moto_ami: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    route = addresses("aws-a", "aws-b")
    with pytest.raises(RuntimeError, match="raised inside the block"):
        with sky.ComputePool(provider=lab_provider(moto_ami, route), nodes=2) as pool:
            pool_id = pool.pool_id
            during = tagged(ec2, pool_id)
            results = pool.broadcast(where)
            deployment = pool._deployment
            assert isinstance(deployment, AWSDeployment)
            known_hosts = (deployment.workdir / "known_hosts").read_text()
            pids = {node.pid for node in pool.nodes}
            watched = worker_processes()
            raise RuntimeError("raised inside the block")
    # The work ran on the instances' hosts, in the workers the SSH provider started there.
    homes = {str(host.home) for host in route.assigned.values()}
    assert {r["home"] for r in results} == homes and len(homes) == 2
    assert {r["pid"] for r in results} == pids and os.getpid() not in pids
    assert len(during["instances"]) == 2 and len(during["groups"]) == 1 and len(during["key_pairs"]) == 1
    assert pids <= watched  # the watchdog's pattern finds the real workers
    # moto's console has no host keys: each host's key was pinned at first use, and said so.
    for host in route.assigned.values():
        assert f"[{host.address}]:{host.port} {' '.join(host.host_key_pub.split()[:2])}" in known_hosts
    assert capfd.readouterr().err.count("trusting the key it presents now") == 2
    # And then nothing: instances, group, key pair, workers, local key.
    assert nothing_left(ec2, pool_id), tagged(ec2, pool_id)
    assert not wait_gone(pids)
    assert not deployment.workdir.exists()


def test_ctrl_c_inside_the_block_leaves_nothing(
    addresses: Any, aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    with pytest.raises(KeyboardInterrupt):
        with sky.ComputePool(provider=lab_provider(moto_ami, addresses("aws-a"), quiet=True)) as pool:
            pool_id, pids = pool.pool_id, {node.pid for node in pool.nodes}
            raise KeyboardInterrupt
    assert nothing_left(ec2, pool_id)
    assert not wait_gone(pids)


def test_ctrl_c_during_the_bootstrap_leaves_nothing(
    addresses: Any, aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    def ctrl_c_at_probe(event: BootstrapEvent) -> None:
        if event.phase == "probe":
            os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT: the main thread waits on the bootstrap

    provider = lab_provider(moto_ami, addresses("aws-a"), progress=ctrl_c_at_probe, quiet=True)
    with pytest.raises(KeyboardInterrupt), sky.ComputePool(provider=provider):
        pytest.fail("the pool must not start")
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert "TerminateInstances" in aws_calls.operations()
    assert nothing_left(ec2, pool_id)


def console_with_keys(*hosts: Host) -> str:
    """Console output as cloud-init writes it at first boot, with these hosts' keys."""
    keys = "\n".join(f"{host.host_key_pub} root@{host.name}" for host in hosts)
    return (
        "[    0.000000] Linux version 6.8.0-1012-aws\n"
        f"-----BEGIN SSH HOST KEY KEYS-----\n{keys}\n-----END SSH HOST KEY KEYS-----\n"
        "Cloud-init v. 24.1 finished\n"
    )


def test_host_keys_from_the_console_output_are_verified(
    lab: Lab,
    addresses: Any,
    aws_calls: CallRecorder,
    ec2: Any,
    moto_ami: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "moto.ec2.responses.general.SAMPLE_CONSOLE_OUTPUT", console_with_keys(lab.hosts["aws-a"])
    )
    route = addresses("aws-a")
    with sky.ComputePool(provider=lab_provider(moto_ami, route, host_keys="console", quiet=True)) as pool:
        deployment = pool._deployment
        assert isinstance(deployment, AWSDeployment)
        assert [node.keys_from for node in deployment.ready] == ["console"]
        assert pool.broadcast(where)[0]["home"] == str(lab.hosts["aws-a"].home)
        pool_id = pool.pool_id
    assert "GetConsoleOutput" in aws_calls.operations()
    assert nothing_left(ec2, pool_id)


def test_a_host_whose_key_is_not_the_one_in_the_console_is_refused(
    lab: Lab,
    addresses: Any,
    aws_calls: CallRecorder,
    ec2: Any,
    moto_ami: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The console names aws-b's key, but the address leads to aws-a: what a man in the middle would look like.
    monkeypatch.setattr(
        "moto.ec2.responses.general.SAMPLE_CONSOLE_OUTPUT", console_with_keys(lab.hosts["aws-b"])
    )
    with pytest.raises(sky.ProvisionError, match="host key is not trusted"):
        with sky.ComputePool(
            provider=lab_provider(moto_ami, addresses("aws-a"), host_keys="console", quiet=True)
        ):
            pass
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert nothing_left(ec2, pool_id)


def test_without_console_keys_the_console_policy_refuses(
    addresses: Any, aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    provider = lab_provider(moto_ami, addresses("aws-a"), host_keys="console", host_key_wait=0.5, quiet=True)
    with pytest.raises(sky.ProvisionError, match=r"no SSH host keys appeared in the console output of i-"):
        with sky.ComputePool(provider=provider):
            pass
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert nothing_left(ec2, pool_id)
