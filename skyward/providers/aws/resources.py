"""Everything one pool creates in EC2, recorded as it is created, and the one way to remove all of it.

A pool creates a key pair, a security group and its instances, each tagged ``skyward:pool=<pool id>`` in the
same call that creates it (`skyward.providers.aws.tags`). `PoolResources` is the ledger of what the pool created
or may have created; its `release` removes all of it (`skyward.providers.aws.release`). `sweep_orphans` removes
what a pool left when its client was killed outright (`skyward.providers.aws.sweep`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from skyward.providers.aws.api import AwsRefused, aws_call
from skyward.providers.aws.release import CleanupFailed, PoolRelease
from skyward.providers.aws.sweep import sweep_orphans
from skyward.providers.aws.tags import CREATED_TAG, LIVE_STATES, POOL_TAG, group_description, pool_tags

__all__ = [
    "CREATED_TAG",
    "LIVE_STATES",
    "POOL_TAG",
    "CleanupFailed",
    "PoolResources",
    "group_description",
    "pool_tags",
    "sweep_orphans",
]


class PoolResources:
    """The ledger of one pool's EC2 resources. `release` is safe to call once, whatever was created."""

    def __init__(self, ec2: Any, pool_id: str, region: str, say: Callable[[str], None]) -> None:
        self.ec2 = ec2
        self.pool_id = pool_id
        self.region = region
        self.key_name = f"skyward-{pool_id}"
        self.group_name = f"skyward-{pool_id}"
        self.group_id: str | None = None
        self.instance_ids: list[str] = []
        self._say = say
        self._touched = False  # whether anything may exist: only then does `release` ask AWS

    # --- creating ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        """Around a call that creates something: from then on `release` must look, unless AWS refused it."""
        before, self._touched = self._touched, True
        try:
            yield
        except AwsRefused:  # AWS answered "no": this call created nothing (a timeout or Ctrl-C may have)
            self._touched = before
            raise

    def import_key_pair(self, public_key: str) -> None:
        with self._creating(), aws_call("importing the pool's key pair"):
            self.ec2.import_key_pair(
                KeyName=self.key_name,
                PublicKeyMaterial=public_key.encode(),
                TagSpecifications=pool_tags(self.pool_id, "key-pair"),
            )

    def create_security_group(self, vpc_id: str, cidr: str) -> str:
        """A group that lets in tcp/22 from `cidr` only (and lets the nodes out, to install packages)."""
        with self._creating(), aws_call("creating the pool's security group"):
            self.group_id = self.ec2.create_security_group(
                GroupName=self.group_name,
                Description=group_description(self.pool_id, cidr),
                VpcId=vpc_id,
                TagSpecifications=pool_tags(self.pool_id, "security-group"),
            )["GroupId"]
        ranges = "Ipv6Ranges" if ":" in cidr else "IpRanges"
        cidr_key = "CidrIpv6" if ":" in cidr else "CidrIp"
        with aws_call("opening SSH in the pool's security group"):
            self.ec2.authorize_security_group_ingress(
                GroupId=self.group_id,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 22,
                        "ToPort": 22,
                        ranges: [{cidr_key: cidr, "Description": f"skyward client of {self.pool_id}"}],
                    }
                ],
            )
        return self.group_id

    def launching(self) -> None:
        """Instances are about to be requested: from now on `release` must look for them."""
        self._touched = True

    def record_instances(self, instance_ids: list[str]) -> None:
        self.instance_ids.extend(i for i in instance_ids if i not in self.instance_ids)

    # --- removing ------------------------------------------------------------------------------------------

    def release(self, timeout: float = 600.0) -> None:
        """Terminate every instance of the pool, then delete its key pair and security group.

        Waits for the instances to terminate (their network interfaces hold the group), at most `timeout`
        seconds. Raises `CleanupFailed` naming whatever is left, after trying everything.
        """
        if not self._touched:
            return
        PoolRelease(self, self._say).run(timeout)
