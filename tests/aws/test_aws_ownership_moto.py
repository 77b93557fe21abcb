"""Teardown and the orphan sweep remove only what skyward created: a tag anyone can set decides nothing.
And tcp/22 opens to more than one address only when asked."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from conftest import POOL_TAG, CallRecorder, pool_ids_seen, tagged, unreachable_aws

import skyward as sky
from skyward.providers.aws import AWS
from skyward.providers.aws.resources import CREATED_TAG, group_description, sweep_orphans


def provider(moto_ami: str, **overrides: Any) -> AWS:
    """Provisioning that never reaches its instances; leftovers of other tests are not swept."""
    return unreachable_aws(moto_ami, **{"sweep_orphans": False, **overrides})


def tags(pool_id: str, created: float | None = None) -> list[dict[str, str]]:
    found = [{"Key": POOL_TAG, "Value": pool_id}]
    if created is not None:
        found.append({"Key": CREATED_TAG, "Value": str(int(created))})
    return found


def fresh_pool_id() -> str:
    """A pool id of skyward's shape no other test uses (moto's state lasts the whole session)."""
    return f"sky-{secrets.token_hex(4)}"


def state(ec2: Any, instance_id: str) -> str:
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservation["Instances"][0]["State"]["Name"])


def group_exists(ec2: Any, group_id: str) -> bool:
    return any(g["GroupId"] == group_id for g in ec2.describe_security_groups()["SecurityGroups"])


def key_exists(ec2: Any, name: str) -> bool:
    return any(k["KeyName"] == name for k in ec2.describe_key_pairs()["KeyPairs"])


def test_resources_of_others_tagged_with_the_pool_survive_its_teardown(
    aws_calls: CallRecorder, ec2: Any, moto_ami: str
) -> None:
    """Someone who can tag resources tags theirs (or a victim's) with the pool's id while it launches."""
    planted: dict[str, str] = {}

    def plant(params: dict[str, Any], **_: Any) -> None:
        if planted:
            return
        (pool_id,) = {
            t["Value"] for spec in params["TagSpecifications"] for t in spec["Tags"] if t["Key"] == POOL_TAG
        }
        spec = [{"ResourceType": "instance", "Tags": tags(pool_id)}]
        victim = ec2.run_instances(
            ImageId=moto_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, TagSpecifications=spec
        )["Instances"][0]["InstanceId"]
        group = ec2.create_security_group(
            GroupName=f"victims-web-{pool_id}",
            Description="the web servers",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(pool_id)}],
        )["GroupId"]
        ec2.create_key_pair(
            KeyName=f"victims-key-{pool_id}",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(pool_id)}],
        )
        planted.update(instance=victim, group=group, pool=pool_id, key=f"victims-key-{pool_id}")

    aws_calls.on("before-parameter-build.ec2.ImportKeyPair", plant)
    with pytest.raises(sky.ProvisionError), sky.ComputePool(provider=provider(moto_ami), nodes=2):
        pytest.fail("moto's instances never answer SSH: the launch must fail and tear down")
    (pool_id,) = pool_ids_seen(aws_calls.calls)
    assert planted["pool"] == pool_id
    assert state(ec2, planted["instance"]) == "running"
    assert group_exists(ec2, planted["group"])
    assert key_exists(ec2, planted["key"])
    # What the pool itself made is gone; only the planted resources still carry its tag.
    assert tagged(ec2, pool_id) == {
        "instances": [planted["instance"]],
        "groups": [planted["group"]],
        "key_pairs": [planted["key"]],
    }
    terminated = {i for call in aws_calls.of("TerminateInstances") for i in call.params["InstanceIds"]}
    assert terminated and planted["instance"] not in terminated


def test_the_sweep_deletes_only_skyward_named_and_described_leftovers(ec2: Any, moto_ami: str) -> None:
    long_ago = time.time() - 7200
    orphan, other, third = fresh_pool_id(), fresh_pool_id(), fresh_pool_id()
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]

    def group(name: str, description: str, pool_id: str) -> str:
        return str(
            ec2.create_security_group(
                GroupName=name,
                Description=description,
                VpcId=vpc,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(pool_id, long_ago)}],
            )["GroupId"]
        )

    def key(name: str, pool_id: str) -> None:
        ec2.create_key_pair(
            KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(pool_id, long_ago)}]
        )

    ours = group(f"skyward-{orphan}", group_description(orphan, "198.51.100.7/32"), orphan)
    key(f"skyward-{orphan}", orphan)
    # Tagged like skyward's, but not named or described like them: someone else's.
    foreign_named = group(f"victims-db-{orphan}", group_description(orphan, "198.51.100.7/32"), orphan)
    foreign_described = group(f"skyward-{other}", "the database", other)
    mismatched_tag = group(f"skyward-{third}", group_description(third, "1.2.3.4/32"), orphan)
    key(f"victims-key-{orphan}", orphan)
    key(f"skyward-{other}", third)  # name and tag disagree
    spec = [{"ResourceType": "instance", "Tags": tags(other)}]  # a victim tagged like a pool
    victim = ec2.run_instances(
        ImageId=moto_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, TagSpecifications=spec
    )["Instances"][0]["InstanceId"]

    deleted = sweep_orphans(ec2, older_than=-3600, say=lambda _: None)  # everything counts as old

    assert not {foreign_named, foreign_described, mismatched_tag, f"victims-key-{orphan}"} & set(deleted)
    assert not group_exists(ec2, ours) and not key_exists(ec2, f"skyward-{orphan}")
    for kept in (foreign_named, foreign_described, mismatched_tag):
        assert group_exists(ec2, kept)
    assert key_exists(ec2, f"victims-key-{orphan}") and key_exists(ec2, f"skyward-{other}")
    assert state(ec2, victim) == "running"


def test_a_pool_whose_instance_still_runs_is_not_swept(ec2: Any, moto_ami: str) -> None:
    """An instance with the pool's key pair keeps its group and key, even without the pool's tag."""
    pool_id = fresh_pool_id()
    group_id = ec2.create_security_group(
        GroupName=f"skyward-{pool_id}",
        Description=group_description(pool_id, "198.51.100.7/32"),
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(pool_id, time.time() - 7200)}],
    )["GroupId"]
    ec2.create_key_pair(
        KeyName=f"skyward-{pool_id}",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(pool_id, time.time() - 7200)}],
    )
    ec2.run_instances(
        ImageId=moto_ami,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        KeyName=f"skyward-{pool_id}",
        SecurityGroupIds=[group_id],
    )
    assert sweep_orphans(ec2, older_than=-3600, say=lambda _: None) == []
    assert group_exists(ec2, group_id)


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "10.0.0.0/16", "203.0.113.0/31", "2001:db8::/64"])
def test_a_wide_ssh_cidr_needs_an_explicit_opt_in_and_warns(cidr: str) -> None:
    with pytest.raises(ValueError, match="allow_wide_ssh_cidr=True"):
        sky.AWS(ssh_cidr=cidr)
    with pytest.warns(UserWarning, match="tcp/22 of the pool's instances will be open to"):
        aws = sky.AWS(ssh_cidr=cidr, allow_wide_ssh_cidr=True)
    assert aws.ssh_cidr == cidr


@pytest.mark.parametrize("cidr", ["198.51.100.7", "198.51.100.7/32", "2001:db8::1", "2001:db8::1/128"])
def test_one_address_needs_no_opt_in(cidr: str, recwarn: pytest.WarningsRecorder) -> None:
    sky.AWS(ssh_cidr=cidr)
    assert not [w for w in recwarn if "tcp/22" in str(w.message)]


def test_the_sweep_command_lists_first_and_deletes_only_with_yes(
    ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from skyward.cli import main

    orphan = fresh_pool_id()
    long_ago = time.time() - 7200
    group_id = ec2.create_security_group(
        GroupName=f"skyward-{orphan}",
        Description=group_description(orphan, "198.51.100.7/32"),
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(orphan, long_ago)}],
    )["GroupId"]
    ec2.create_key_pair(
        KeyName=f"skyward-{orphan}",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(orphan, long_ago)}],
    )
    foreign = ec2.create_security_group(
        GroupName=f"victims-db-{orphan}",
        Description=group_description(orphan, "198.51.100.7/32"),
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(orphan, long_ago)}],
    )["GroupId"]
    region = ec2.meta.region_name

    sweep = ["aws", "sweep", "--region", region, "--older-than", "0"]  # moto dates key pairs now
    assert main(sweep) == 0  # a dry run
    listed = capsys.readouterr().out
    assert (
        f"{orphan}  security group  {group_id}" in listed
        and f"{orphan}  key pair        skyward-{orphan}" in listed
    )
    assert foreign not in listed and "--yes" in listed
    assert group_exists(ec2, group_id) and key_exists(ec2, f"skyward-{orphan}")

    assert main([*sweep, "--yes"]) == 0
    assert "deleted 2 of 2" in capsys.readouterr().out
    assert not group_exists(ec2, group_id) and not key_exists(ec2, f"skyward-{orphan}")
    assert group_exists(ec2, foreign)
    assert main(sweep) == 0
    assert f"nothing to sweep in {region}" in capsys.readouterr().out
