"""The dashboard of an AWS pool (moto's instances, reached at the sshd lab's hosts): the page loads in a real
browser and lists the nodes with their instance, instance type and price basis."""

from __future__ import annotations

import html
import os
from collections import Counter
from typing import Any

from browser import node_rows, rendered_dom
from sshd_lab import Lab
from test_aws_lab_pool import addresses, lab, lab_provider  # noqa: F401  (fixtures of the lab's AWS pools)

import skyward as sky


def node_name(index: int) -> str:
    return os.environ["SKYWARD_NODE"]


def test_the_dashboard_of_an_aws_pool_lists_its_nodes_and_machines(
    lab: Lab,  # noqa: F811
    addresses: Any,  # noqa: F811
    aws_calls: Any,
    ec2: Any,
    moto_ami: str,
) -> None:
    route = addresses("aws-a", "aws-b")
    provider = lab_provider(moto_ami, route, quiet=True)
    with sky.ComputePool(provider=provider, nodes=2, dashboard=True) as pool:
        ran = Counter(pool.map(node_name, range(8)))
        assert pool.dashboard_url is not None
        dom = rendered_dom(pool.dashboard_url)
        names = {n.name for n in pool.nodes}
    rows = node_rows(dom)
    assert set(rows) == names
    for name, row in rows.items():
        assert row["done"] == str(ran[name]) and row["state"] == "ready"
    text = html.unescape(dom)
    assert text.count("instance type: c5.large") == 2
    assert "allocation: spot-if-available" in text
    instances = set(route.assigned)
    assert all(f"instance: {instance}" in text for instance in instances)
