"""Removing everything one pool created in EC2 (`PoolResources.release`), whatever was created.

It removes what the pool recorded, and what a call interrupted after AWS acted but before its answer arrived
(Ctrl-C during ``RunInstances``) created, found by what cannot be changed after creation: the key pair's name
(``skyward-<pool id>``, unique to the pool), the group's name, and for instances the pool's key pair *and* its
recorded security group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from skyward.providers.aws.api import aws_call, error_code, error_message
from skyward.providers.aws.tags import LIVE_STATES, POOL_TAG

if TYPE_CHECKING:
    from skyward.providers.aws.resources import PoolResources


class CleanupFailed(Exception):
    """Some of a pool's resources could not be removed (the message names them and the commands to do it)."""


class PoolRelease:
    """One release of a pool's resources: terminate its instances, then delete its key pair and group."""

    def __init__(self, ledger: PoolResources, say: Callable[[str], None]) -> None:
        self.ledger = ledger
        self.ec2 = ledger.ec2
        self._say = say

    def run(self, timeout: float) -> None:
        """Waits for the instances to terminate (their network interfaces hold the group), at most `timeout`
        seconds. Raises `CleanupFailed` naming whatever is left, after trying everything."""
        deadline = time.monotonic() + timeout
        problems: list[str] = []
        terminating = self._terminate_all(problems)
        try:
            with aws_call(f"deleting key pair {self.ledger.key_name}"):
                # By its name, which only this pool uses; idempotent: a missing key pair is no error.
                self.ec2.delete_key_pair(KeyName=self.ledger.key_name)
        except Exception as exc:  # noqa: BLE001  (report it, and go on removing the rest)
            problems.append(str(exc))
        groups = {g for g in [self.ledger.group_id, *self._named_groups(problems)] if g}
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
        filters = [{"Name": f"tag:{POOL_TAG}", "Values": [self.ledger.pool_id]}, *extra.pop("filters", [])]
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
        if self.ledger.group_id is None:
            return []  # no group recorded: no RunInstances was sent
        reservations = self._tagged(
            self.ec2.describe_instances,
            "Reservations",
            problems,
            filters=[
                {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
                {"Name": "key-name", "Values": [self.ledger.key_name]},
                {"Name": "instance.group-id", "Values": [self.ledger.group_id]},
            ],
        )
        return [
            item["InstanceId"]
            for r in reservations
            for item in r["Instances"]
            if item.get("KeyName") == self.ledger.key_name
            and any(g.get("GroupId") == self.ledger.group_id for g in item.get("SecurityGroups", []))
        ]

    def _named_groups(self, problems: list[str]) -> list[str]:
        """The pool's group found by its name (fixed at creation), when the answer that created it was lost."""
        groups = self._tagged(
            self.ec2.describe_security_groups,
            "SecurityGroups",
            problems,
            filters=[{"Name": "group-name", "Values": [self.ledger.group_name]}],
        )
        return [g["GroupId"] for g in groups if g.get("GroupName") == self.ledger.group_name]

    def _terminate_all(self, problems: list[str]) -> list[str]:
        """Terminate the recorded instances and those this pool's interrupted launches started; returns ids."""
        ids = sorted({*self.ledger.instance_ids, *self._launched_instance_ids(problems)})
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
        pool_id, region = self.ledger.pool_id, self.ledger.region
        return (
            f"skyward could not remove everything pool {pool_id} created in {region}: "
            + "; ".join(problems)
            + ". Find what is left with `aws ec2 describe-instances "
            + f"--region {region} --filters Name=tag:{POOL_TAG},Values={pool_id}` (and describe-security-groups, "
            + "describe-key-pairs with the same filter), then `aws ec2 terminate-instances`, "
            + "`delete-security-group` and `delete-key-pair`."
        )
