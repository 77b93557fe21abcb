"""Everything one pool creates in EC2, and the one way to remove all of it.

A pool creates a key pair, a security group and its instances, each tagged ``skyward:pool=<pool id>`` in the
same call that creates it. Tags alone are never trusted: anyone allowed to tag resources in the account could
tag someone else's instance with a pool's id. `PoolResources.release` removes what the pool recorded, and what a
call interrupted after AWS acted but before its answer arrived (Ctrl-C during ``RunInstances``) created, found by
what cannot be changed after creation: the key pair's name (``skyward-<pool id>``, unique to the pool), the
group's name, and for instances the pool's key pair *and* its recorded security group.

`sweep_orphans` removes what a pool left when its client was killed outright: its instances terminated
themselves (the lease watchdog), but their security group and key pair remain. It touches only groups and key
pairs whose names, tags and (for groups) descriptions are all skyward's own pattern, and never instances.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from skyward.providers.aws.api import AwsRefused, aws_call, error_code, error_message

POOL_TAG = "skyward:pool"
CREATED_TAG = "skyward:created"  # unix seconds: security groups have no creation time of their own
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
# What skyward names its key pairs and groups (``skyward-`` + the pool id, ``sky-`` + 8 hex digits) and how it
# describes its groups; the sweep deletes nothing that does not match.
_RESOURCE_NAME = re.compile(r"skyward-(sky-[0-9a-f]{8})")
_GROUP_DESCRIPTION = re.compile(r"skyward pool (sky-[0-9a-f]{8}): SSH from \S+ only")


def group_description(pool_id: str, cidr: str) -> str:
    return f"skyward pool {pool_id}: SSH from {cidr} only"


def pool_tags(pool_id: str, resource_type: str, **extra: str) -> list[dict[str, Any]]:
    """``TagSpecifications`` that mark a resource as the pool's (and when it was made)."""
    tags = {POOL_TAG: pool_id, CREATED_TAG: str(int(time.time())), **extra}
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


class CleanupFailed(Exception):
    """Some of a pool's resources could not be removed (the message names them and the commands to do it)."""


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
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        terminating = self._terminate_all(problems)
        try:
            with aws_call(f"deleting key pair {self.key_name}"):
                # By its name, which only this pool uses; idempotent: a missing key pair is no error.
                self.ec2.delete_key_pair(KeyName=self.key_name)
        except Exception as exc:  # noqa: BLE001  (report it, and go on removing the rest)
            problems.append(str(exc))
        groups = {g for g in [self.group_id, *self._named_groups(problems)] if g}
        if groups:
            if terminating:
                self._say(
                    f"waiting for {len(terminating)} instance(s) to terminate, to delete the security group"
                )
                self._wait_terminated(terminating, deadline, problems)
            for group in groups:
                self._delete_group(group, deadline, problems)
        if problems:
            raise CleanupFailed(self._leftovers(problems))

    def _tagged(self, describe: Callable[..., Any], key: str, problems: list[str], **extra: Any) -> list[Any]:
        filters = [{"Name": f"tag:{POOL_TAG}", "Values": [self.pool_id]}, *extra.pop("filters", [])]
        try:
            with aws_call(f"listing the pool's {key}"):
                return list(describe(Filters=filters, **extra)[key])
        except Exception as exc:  # noqa: BLE001
            problems.append(str(exc))
            return []

    def _launched_instance_ids(self, problems: list[str]) -> list[str]:
        """Live instances that this pool's ``RunInstances`` started, its answer lost or not: they carry the
        pool's tag, its key pair and its security group. An instance's key pair is fixed at launch, so tagging
        someone else's instance does not make it one of these."""
        if self.group_id is None:
            return []  # no group recorded: no RunInstances was sent
        reservations = self._tagged(
            self.ec2.describe_instances,
            "Reservations",
            problems,
            filters=[
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
                {"Name": "key-name", "Values": [self.key_name]},
                {"Name": "instance.group-id", "Values": [self.group_id]},
            ],
        )
        return [
            item["InstanceId"]
            for r in reservations
            for item in r["Instances"]
            if item.get("KeyName") == self.key_name
            and any(g.get("GroupId") == self.group_id for g in item.get("SecurityGroups", []))
        ]

    def _named_groups(self, problems: list[str]) -> list[str]:
        """The pool's group found by its name (fixed at creation), when the answer that created it was lost."""
        groups = self._tagged(
            self.ec2.describe_security_groups,
            "SecurityGroups",
            problems,
            filters=[{"Name": "group-name", "Values": [self.group_name]}],
        )
        return [g["GroupId"] for g in groups if g.get("GroupName") == self.group_name]

    def _terminate_all(self, problems: list[str]) -> list[str]:
        """Terminate the recorded instances and those this pool's interrupted launches started; returns ids."""
        ids = sorted({*self.instance_ids, *self._launched_instance_ids(problems)})
        if not ids:
            return []
        self._say(f"terminating {len(ids)} instance(s): {', '.join(ids)}")
        for attempt in range(6):
            try:
                with aws_call(
                    "terminating the pool's instances", passthrough=("InvalidInstanceID.NotFound",)
                ):
                    self.ec2.terminate_instances(InstanceIds=ids)
                return ids
            except Exception as exc:  # noqa: BLE001
                # NotFound right after RunInstances is EC2 catching up with itself: the instance exists.
                if error_code(exc) == "InvalidInstanceID.NotFound" and attempt < 5:
                    time.sleep(2.0)
                    continue
                problems.append(error_message(exc) if error_code(exc) else str(exc))
                return ids
        return ids

    def _wait_terminated(self, ids: list[str], deadline: float, problems: list[str]) -> None:
        while time.monotonic() < deadline:
            try:
                with aws_call("waiting for the pool's instances to terminate"):
                    reservations = self.ec2.describe_instances(InstanceIds=ids)["Reservations"]
            except Exception as exc:  # noqa: BLE001
                problems.append(str(exc))
                return
            states = {item["State"]["Name"] for r in reservations for item in r["Instances"]}
            if states <= {"terminated"}:
                return
            time.sleep(3.0)
        problems.append(f"instances {', '.join(ids)} had not terminated after the time allowed")

    def _delete_group(self, group_id: str, deadline: float, problems: list[str]) -> None:
        while True:
            try:
                with aws_call(
                    f"deleting security group {group_id}",
                    passthrough=("DependencyViolation", "InvalidGroup.NotFound"),
                ):
                    self.ec2.delete_security_group(GroupId=group_id)
                return
            except Exception as exc:  # noqa: BLE001
                code = error_code(exc)
                if code == "InvalidGroup.NotFound":
                    return
                if code == "DependencyViolation" and time.monotonic() < deadline:
                    # A network interface still holds it: an instance is still going (perhaps one launched by
                    # an interrupted call that only now shows up under the pool's tag).
                    self._terminate_all([])
                    time.sleep(5.0)
                    continue
                problems.append(error_message(exc) if code else str(exc))
                return

    def _leftovers(self, problems: list[str]) -> str:
        region = f"--region {self.region}"
        return (
            f"skyward could not remove everything pool {self.pool_id} created in {self.region}: "
            + "; ".join(problems)
            + ". Find what is left with `aws ec2 describe-instances "
            + f"{region} --filters Name=tag:{POOL_TAG},Values={self.pool_id}` (and describe-security-groups, "
            + "describe-key-pairs with the same filter), then `aws ec2 terminate-instances`, "
            + "`delete-security-group` and `delete-key-pair`."
        )


def _skyward_pool_of(name: str, tags: dict[str, str]) -> str | None:
    """The pool id when `name` is skyward's name for that pool's resource and the pool tag agrees, else None."""
    match = _RESOURCE_NAME.fullmatch(name)
    if match is None or tags.get(POOL_TAG) != match.group(1):
        return None
    return match.group(1)


def sweep_orphans(ec2: Any, older_than: float, say: Callable[[str], None]) -> list[str]:
    """Delete skyward security groups and key pairs older than `older_than` seconds whose pool has no live
    instance; returns what was deleted. What cannot be deleted now is left for a later sweep.

    A group is skyward's when its name is ``skyward-<pool id>``, its pool tag says the same pool and its
    description is the one skyward writes; a key pair when its name and tag agree likewise. Tags alone decide
    nothing, and instances are never touched here.
    """
    cutoff = time.time() - older_than
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}])[
        "SecurityGroups"
    ]
    keys = ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}])["KeyPairs"]
    candidates: dict[str, list[tuple[str, str]]] = {}
    for group in groups:
        tags = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        pool_id = _skyward_pool_of(group.get("GroupName", ""), tags)
        described = _GROUP_DESCRIPTION.fullmatch(group.get("Description", ""))
        if pool_id is None or described is None or described.group(1) != pool_id:
            continue
        if float(tags.get(CREATED_TAG, "inf")) < cutoff:
            candidates.setdefault(pool_id, []).append(("group", group["GroupId"]))
    for key in keys:
        tags = {t["Key"]: t["Value"] for t in key.get("Tags", [])}
        pool_id = _skyward_pool_of(key.get("KeyName", ""), tags)
        if pool_id is None:
            continue
        created = key.get("CreateTime")
        made = created.timestamp() if isinstance(created, datetime) else float(tags.get(CREATED_TAG, "inf"))
        if made < cutoff:
            candidates.setdefault(pool_id, []).append(("key", key["KeyName"]))
    if not candidates:
        return []
    alive: set[str] = set()
    for name, values in (
        (f"tag:{POOL_TAG}", sorted(candidates)),
        ("key-name", [f"skyward-{pool_id}" for pool_id in sorted(candidates)]),
    ):
        live = ec2.describe_instances(
            Filters=[
                {"Name": name, "Values": values},
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
            ]
        )["Reservations"]
        for r in live:
            for item in r["Instances"]:
                alive |= {t["Value"] for t in item.get("Tags", []) if t["Key"] == POOL_TAG}
                match = _RESOURCE_NAME.fullmatch(item.get("KeyName") or "")
                if match:
                    alive.add(match.group(1))
    deleted = []
    for pool_id, items in sorted(candidates.items()):
        if pool_id in alive:
            continue
        for kind, ident in items:
            try:
                if kind == "group":
                    ec2.delete_security_group(GroupId=ident)
                else:
                    ec2.delete_key_pair(KeyName=ident)
            except Exception:  # noqa: BLE001, S112  (still in use, or gone meanwhile: a later sweep decides)
                continue
            deleted.append(ident)
    if deleted:
        say(f"removed what earlier pools left behind: {', '.join(deleted)}")
    return deleted
