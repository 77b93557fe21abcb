"""One pool launched against moto, whose instances never answer SSH: what it asked AWS for, what existed while
it waited, the clear timeout it failed with, and that nothing of it is left."""

from __future__ import annotations

import base64
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import boto3
import pytest
from conftest import (
    POOL_TAG,
    REGION,
    Call,
    guarded_network,
    moto_environment,
    pool_ids_seen,
    recording_calls,
    tagged,
)

import skyward as sky

NODES = 2
CIDR = "198.51.100.7/32"
SSH_TIMEOUT = 2.0
PROFILE = "skyward-test-nodes"  # an instance profile the nodes get (their own credentials, e.g. for S3)


@dataclass
class Launch:
    """What one failed launch did, seen from AWS (moto) and from this machine."""

    pool_id: str = ""
    error: str = ""
    elapsed: float = 0.0
    calls: list[Call] = field(default_factory=list)
    during: dict[str, Any] = field(default_factory=dict)  # moto's state while the pool waited for SSH
    after: dict[str, list[str]] = field(default_factory=dict)
    blocked: list[tuple[str, int]] = field(default_factory=list)
    workdir: Path | None = None

    def operations(self) -> list[str]:
        return [c.operation for c in self.calls if c.service == "ec2"]

    def of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]


def look_at_moto(ec2: Any, pool_id: str) -> dict[str, Any]:
    """Everything of the pool that moto holds, described in full."""
    state: dict[str, Any] = {"tagged": tagged(ec2, pool_id)}
    reservations = ec2.describe_instances(InstanceIds=state["tagged"]["instances"])["Reservations"]
    state["instances"] = [item for r in reservations for item in r["Instances"]]
    first = state["instances"][0]["InstanceId"]
    user_data = ec2.describe_instance_attribute(InstanceId=first, Attribute="userData")["UserData"]["Value"]
    state["user_data"] = base64.b64decode(user_data).decode()
    state["shutdown_behaviour"] = ec2.describe_instance_attribute(
        InstanceId=first, Attribute="instanceInitiatedShutdownBehavior"
    )["InstanceInitiatedShutdownBehavior"]["Value"]
    state["groups"] = ec2.describe_security_groups(GroupIds=state["tagged"]["groups"])["SecurityGroups"]
    state["key_pairs"] = ec2.describe_key_pairs(KeyNames=state["tagged"]["key_pairs"], IncludePublicKey=True)[
        "KeyPairs"
    ]
    return state


@pytest.fixture(scope="module")
def launch(moto_endpoint: str, moto_ami: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """``ComputePool(provider=AWS(...), nodes=2, cpu=4, memory="16GB")``, entered once for this module."""
    record = Launch()
    with (
        moto_environment(moto_endpoint, tmp_path_factory.mktemp("aws")),
        guarded_network() as guard,
        recording_calls() as recorder,
    ):
        ec2 = boto3.client("ec2", region_name=REGION)

        def while_waiting(params: dict[str, Any], **_: Any) -> None:
            if record.during or "InstanceIds" not in params:
                return  # the wait's calls name the instances; the first one sees everything created
            (record.pool_id,) = pool_ids_seen(recorder.calls)
            record.during = look_at_moto(ec2, record.pool_id)
            (record.workdir,) = Path(tempfile.gettempdir()).glob(f"skyward-{record.pool_id}-*")
            key_file = record.workdir / "id_ed25519"
            record.during["key_mode"] = stat.S_IMODE(key_file.stat().st_mode)
            record.during["local_public_key"] = (
                asyncssh.read_private_key(key_file).export_public_key().decode()
            )

        recorder.on("before-parameter-build.ec2.DescribeInstances", while_waiting)
        iam = boto3.client("iam", region_name=REGION)
        iam.create_instance_profile(InstanceProfileName=PROFILE)
        provider = sky.AWS(
            ami=moto_ami,
            ssh_cidr="198.51.100.7",
            ssh_timeout=SSH_TIMEOUT,
            quiet=True,
            iam_instance_profile=PROFILE,
        )
        started = time.monotonic()
        with pytest.raises(sky.ProvisionError) as failure:
            with sky.ComputePool(provider=provider, nodes=NODES, cpu=4, memory="16GB"):
                pytest.fail("the pool must not start: its instances never answer SSH")
        record.elapsed = time.monotonic() - started
        record.error = str(failure.value)
        record.calls = list(recorder.calls)
        record.after = tagged(ec2, record.pool_id)
        record.blocked = list(guard.blocked)
    yield record


def test_entering_fails_with_a_clear_timeout_error(launch: Launch) -> None:
    assert f"did not answer SSH within {SSH_TIMEOUT:.0f}s" in launch.error
    assert f"{NODES} of {NODES} instance(s)" in launch.error
    for instance in launch.during["instances"]:  # each one named, with where it was tried
        assert f"{instance['InstanceId']} ({instance['PublicIpAddress']}:22)" in launch.error
    assert CIDR in launch.error and "ssh_timeout" in launch.error
    assert launch.elapsed < SSH_TIMEOUT + 20


def test_nothing_of_the_pool_is_left(launch: Launch) -> None:
    assert launch.during["tagged"]["instances"] and launch.during["tagged"]["groups"]  # they did exist
    assert launch.after == {"instances": [], "groups": [], "key_pairs": []}
    assert launch.workdir is not None and not launch.workdir.exists()  # the private key is gone too


def test_the_calls_made_in_order(launch: Launch) -> None:
    operations = launch.operations()
    expected = [
        "ImportKeyPair",
        "CreateSecurityGroup",
        "AuthorizeSecurityGroupIngress",
        "RunInstances",
        "DescribeInstances",
        "TerminateInstances",
        "DeleteKeyPair",
        "DeleteSecurityGroup",
    ]
    positions = [operations.index(name) for name in expected]
    assert positions == sorted(positions), operations
    # Only reads before the first creation: a plan that fails creates nothing.
    first_write = operations.index("ImportKeyPair")
    assert all(op.startswith("Describe") for op in operations[:first_write]), operations[:first_write]
    assert [c.operation for c in launch.calls if c.service == "ssm"] == []  # the AMI was given
    # Spot first (moto grants MinCount, so the rest came on-demand: the partial-capacity path).
    runs = launch.of("RunInstances")
    assert runs[0].params["InstanceMarketOptions"]["MarketType"] == "spot"
    assert (runs[0].params["MinCount"], runs[0].params["MaxCount"]) == (1, NODES)
    assert [r.params.get("InstanceMarketOptions") for r in runs[1:]] == [None] * (len(runs) - 1)
    assert len(launch.during["instances"]) == NODES


def test_the_instances_get_the_instance_profile_asked(launch: Launch) -> None:
    assert {r.params["IamInstanceProfile"]["Name"] for r in launch.of("RunInstances")} == {PROFILE}
    for instance in launch.during["instances"]:
        assert instance["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/{PROFILE}")


def test_the_instance_type_is_the_smallest_with_the_cpu_and_memory_asked(launch: Launch) -> None:
    run = launch.of("RunInstances")[0]
    # 4 vCPUs and 16 GiB: m5a.xlarge is moto's first by (vCPUs, memory, no instance storage, name).
    assert run.params["InstanceType"] == "m5a.xlarge"
    assert {i["InstanceType"] for i in launch.during["instances"]} == {"m5a.xlarge"}


def test_everything_is_tagged_with_the_pool(launch: Launch) -> None:
    for operation, resource_types in [
        ("ImportKeyPair", ["key-pair"]),
        ("CreateSecurityGroup", ["security-group"]),
        ("RunInstances", ["instance", "volume"]),
    ]:
        for call in launch.of(operation):
            specs = {spec["ResourceType"]: spec["Tags"] for spec in call.params["TagSpecifications"]}
            assert sorted(specs) == sorted(resource_types)
            for tags in specs.values():
                assert {"Key": POOL_TAG, "Value": launch.pool_id} in tags
    for instance in launch.during["instances"]:
        assert {"Key": POOL_TAG, "Value": launch.pool_id} in instance["Tags"]
    for resource in [*launch.during["groups"], *launch.during["key_pairs"]]:
        assert {"Key": POOL_TAG, "Value": launch.pool_id} in resource["Tags"]


def test_ssh_is_open_to_the_client_cidr_only(launch: Launch) -> None:
    (group,) = launch.during["groups"]
    (rule,) = group["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == [CIDR]
    assert rule.get("Ipv6Ranges", []) == [] and rule.get("UserIdGroupPairs", []) == []
    for instance in launch.during["instances"]:
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [group["GroupId"]]


def test_the_key_pair_is_ephemeral_ed25519_made_here(launch: Launch) -> None:
    (key_pair,) = launch.during["key_pairs"]
    assert key_pair["KeyName"] == f"skyward-{launch.pool_id}" and key_pair["KeyType"] == "ed25519"
    # What AWS holds is the public half of the private key written here, readable by this user only.
    assert key_pair["PublicKey"].split()[:2] == launch.during["local_public_key"].split()[:2]
    assert launch.during["key_mode"] == 0o600
    for instance in launch.during["instances"]:
        assert instance["KeyName"] == key_pair["KeyName"]
    delete = launch.of("DeleteKeyPair")
    assert [c.params["KeyName"] for c in delete] == [key_pair["KeyName"]]


def test_user_data_installs_the_lease_watchdog_and_shutdown_terminates(launch: Launch) -> None:
    script = launch.during["user_data"]
    assert script.startswith("#!/bin/bash\n") and launch.pool_id in script
    assert "pgrep -f -- '-m skyward.worker'" in script and 'shutdown -h now "skyward: $reason"' in script
    assert "ClientAliveInterval 15" in script and "systemctl enable --now skyward-watchdog.service" in script
    assert launch.during["shutdown_behaviour"] == "terminate"
    run = launch.of("RunInstances")[0]
    assert run.params["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert run.params["MetadataOptions"]["HttpTokens"] == "required"
    (volume,) = run.params["BlockDeviceMappings"]
    assert volume["Ebs"]["VolumeSize"] >= 30 and volume["Ebs"]["DeleteOnTermination"] is True


def test_it_tried_each_public_address_and_nothing_else_left_this_machine(launch: Launch) -> None:
    public = {i["PublicIpAddress"] for i in launch.during["instances"]}
    assert {host for host, _ in launch.blocked} == public
    assert {port for _, port in launch.blocked} == {22}
