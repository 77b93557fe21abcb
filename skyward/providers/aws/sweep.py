"""`sweep_orphans`: remove what a pool left when its client was killed outright.

Its instances terminated themselves (the lease watchdog), but their security group and key pair remain. The
sweep touches only groups and key pairs whose names, tags and (for groups) descriptions are all skyward's own
pattern, and never instances.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from skyward.providers.aws.tags import CREATED_TAG, LIVE_STATES, POOL_TAG

# What skyward names its key pairs and groups (``skyward-`` + the pool id, ``sky-`` + 8 hex digits) and how it
# describes its groups; the sweep deletes nothing that does not match.
_RESOURCE_NAME = re.compile(r"skyward-(sky-[0-9a-f]{8})")
_GROUP_DESCRIPTION = re.compile(r"skyward pool (sky-[0-9a-f]{8}): SSH from \S+ only")


def _skyward_pool_of(name: str, tags: dict[str, str]) -> str | None:
    """The pool id when `name` is skyward's name for that pool's resource and the pool tag agrees, else None."""
    match = _RESOURCE_NAME.fullmatch(name)
    if match is None or tags.get(POOL_TAG) != match.group(1):
        return None
    return match.group(1)


@dataclass(frozen=True)
class Orphan:
    """A security group or key pair of a pool that has no live instance."""

    pool_id: str
    kind: Literal["group", "key"]
    ident: str  # the group's id or the key pair's name


def sweep_orphans(ec2: Any, older_than: float, say: Callable[[str], None]) -> list[str]:
    """Delete skyward security groups and key pairs older than `older_than` seconds whose pool has no live
    instance (`find_orphans`); returns what was deleted. What cannot be deleted now is left for a later sweep."""
    return delete_orphans(ec2, find_orphans(ec2, older_than), say)


def find_orphans(ec2: Any, older_than: float) -> list[Orphan]:
    """Skyward security groups and key pairs older than `older_than` seconds whose pool has no live instance.

    A group is skyward's when its name is ``skyward-<pool id>``, its pool tag says the same pool and its
    description is the one skyward writes; a key pair when its name and tag agree likewise. Tags alone decide
    nothing, and instances are never touched here.
    """
    cutoff = time.time() - older_than
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}])[
        "SecurityGroups"
    ]
    keys = ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [POOL_TAG]}])["KeyPairs"]
    candidates: dict[str, list[tuple[Literal["group", "key"], str]]] = {}
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
    return [
        Orphan(pool_id, kind, ident)
        for pool_id, items in sorted(candidates.items())
        if pool_id not in alive
        for kind, ident in items
    ]


def delete_orphans(ec2: Any, orphans: list[Orphan], say: Callable[[str], None]) -> list[str]:
    """Delete `orphans`; returns what was deleted (what is still in use, or gone meanwhile, is skipped)."""
    deleted = []
    for orphan in orphans:
        try:
            if orphan.kind == "group":
                ec2.delete_security_group(GroupId=orphan.ident)
            else:
                ec2.delete_key_pair(KeyName=orphan.ident)
        except Exception:  # noqa: BLE001, S112  (still in use, or gone meanwhile: a later sweep decides)
            continue
        deleted.append(orphan.ident)
    if deleted:
        say(f"removed what earlier pools left behind: {', '.join(deleted)}")
    return deleted
