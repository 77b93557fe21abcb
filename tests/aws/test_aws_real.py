"""One pool on real EC2: two small on-demand instances run tasks, then nothing of the pool is left.

It costs money and needs an account, so it runs only when boto3 finds credentials AND ``SKYWARD_REAL_AWS=1``
is set; the region is ``SKYWARD_REAL_AWS_REGION`` (default ``us-east-1``). Everywhere else it is skipped, and
the moto tests beside it cover the same path against moto's server.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import pytest

import skyward as sky

REGION = os.environ.get("SKYWARD_REAL_AWS_REGION", "us-east-1")


def _why_not() -> str | None:
    """Why the real-AWS test cannot run here, or ``None`` when it can."""
    if os.environ.get("SKYWARD_REAL_AWS") != "1":
        return "real AWS is opt-in: set SKYWARD_REAL_AWS=1 (it launches instances and costs money)"
    try:
        import boto3
    except ImportError:
        return "boto3 is not installed (skyward[aws])"
    if boto3.Session().get_credentials() is None:
        return "no AWS credentials found"
    if sys.version_info[:2] != (3, 12):
        return "the default AMI (Ubuntu 24.04) has Python 3.12 and nodes run the client's minor version"
    if os.environ.get("AWS_ENDPOINT_URL"):
        return "AWS_ENDPOINT_URL is set: this test is for real AWS, not an emulator"
    return None


def where() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


@pytest.mark.real_aws
@pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")
def test_a_real_pool_runs_on_two_instances_and_leaves_nothing() -> None:
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    provider = sky.AWS(region=REGION, ssh_timeout=600)
    with sky.ComputePool(provider=provider, nodes=2, cpu=2, memory="4GB", allocation="on-demand") as pool:
        pool_id = pool.pool_id
        results = pool.broadcast(where)
        squares = [pool.submit(pow, n, 2).result(timeout=120) for n in range(8)]
    assert squares == [n * n for n in range(8)]
    hosts = {r["host"] for r in results}
    assert (
        len(hosts) == 2 and socket.gethostname() not in hosts
    )  # two instances, neither of them this machine

    pool_filter = [{"Name": "tag:skyward:pool", "Values": [pool_id]}]
    live = ["pending", "running", "stopping", "stopped"]
    reservations = ec2.describe_instances(
        Filters=[*pool_filter, {"Name": "instance-state-name", "Values": live}]
    )["Reservations"]
    assert [i for r in reservations for i in r["Instances"]] == []
    assert ec2.describe_security_groups(Filters=pool_filter)["SecurityGroups"] == []
    assert ec2.describe_key_pairs(Filters=pool_filter)["KeyPairs"] == []
