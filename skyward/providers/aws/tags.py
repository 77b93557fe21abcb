"""How skyward tags what a pool creates in EC2 (`resources`), and what teardown and the sweep look for.

Tags alone are never trusted (anyone allowed to tag resources in the account could tag someone else's): teardown
and the sweep also check what cannot change after creation (`release`, `sweep`).
"""

from __future__ import annotations

import time
from typing import Any

POOL_TAG = "skyward:pool"
CREATED_TAG = "skyward:created"  # unix seconds: security groups have no creation time of their own
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")


def group_description(pool_id: str, cidr: str) -> str:
    return f"skyward pool {pool_id}: SSH from {cidr} only"


def pool_tags(pool_id: str, resource_type: str, **extra: str) -> list[dict[str, Any]]:
    """``TagSpecifications`` that mark a resource as the pool's (and when it was made)."""
    tags = {POOL_TAG: pool_id, CREATED_TAG: str(int(time.time())), **extra}
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
