"""The dashboard of an AWS pool (moto's instances, reached at the sshd lab's hosts): the page loads in a real
browser and lists the nodes with their instance, instance type, price basis as launched, hourly price and
running cost (moto answers every spot price with $0.00001/hour and does not serve the Price List API)."""

from __future__ import annotations

import html
import os
import re
import time
from collections import Counter
from typing import Any

from browser import node_rows, rendered_dom
from sshd_lab import Lab
from test_aws_lab_pool import addresses, lab, lab_provider  # noqa: F401  (fixtures of the lab's AWS pools)

import skyward as sky

MOTO_SPOT_PRICE = 0.00001  # USD per hour, moto's answer to DescribeSpotPriceHistory


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
    before = time.time()
    with sky.ComputePool(provider=provider, nodes=2, dashboard=True) as pool:
        ran = Counter(pool.map(node_name, range(8)))
        assert pool.dashboard_url is not None
        assert pool._deployment.prices.done.wait(30)  # type: ignore[union-attr]  (looked up in a thread)
        dom = rendered_dom(pool.dashboard_url)
        hours = (time.time() - before) / 3600
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
    # moto grants a spot request its MinCount only: spot-if-available gets one spot node, then one on-demand
    lifecycle = {
        i["InstanceId"]: i.get("InstanceLifecycle", "on-demand")
        for r in ec2.describe_instances(InstanceIds=list(instances))["Reservations"]
        for i in r["Instances"]
    }
    assert sorted(lifecycle.values()) == ["on-demand", "spot"]
    machines = dict(re.findall(r"instance: (i-[0-9a-f]+), ([^<]*)", text))
    for instance, basis in lifecycle.items():
        assert f"price basis: {basis}" in machines[instance]
        if basis == "on-demand":  # moto does not serve the Price List API
            assert "$/hour: unknown, cost so far: unknown" in machines[instance]
            continue
        assert "$/hour: $0.00001000" in machines[instance]
        cost = re.search(r"cost so far: \$([0-9.]+) \(estimate\)", machines[instance])
        assert cost is not None and 0 < float(cost.group(1)) <= MOTO_SPOT_PRICE * (hours + 1 / 3600)
        spot_cost = float(cost.group(1))
    total = re.search(r'id="total-cost">\$([0-9.]+) \(estimate; 1 node without a price\)<', text)
    assert total is not None and spot_cost <= float(total.group(1)) <= MOTO_SPOT_PRICE * (hours + 1 / 3600)


def test_an_on_demand_pool_whose_price_cannot_be_had_shows_unknown_and_runs(
    lab: Lab,  # noqa: F811
    addresses: Any,  # noqa: F811
    aws_calls: Any,
    ec2: Any,
    moto_ami: str,
    caplog: Any,
) -> None:
    """moto's server fails every Price List call (it does not implement the service), as AWS would fail one
    without pricing:GetProducts."""
    route = addresses("aws-a")
    provider = lab_provider(moto_ami, route, quiet=True)
    with caplog.at_level("INFO", logger="skyward.aws"):
        with sky.ComputePool(provider=provider, nodes=1, allocation="on-demand", dashboard=True) as pool:
            assert pool._deployment.prices.done.wait(30)  # type: ignore[union-attr]
            assert pool.dashboard_url is not None
            dom = rendered_dom(pool.dashboard_url)
            ran = set(pool.map(node_name, range(4)))
            names = {n.name for n in pool.nodes}
    assert ran == names  # the pool ran its tasks on its node
    text = html.unescape(dom)
    assert "price basis: on-demand" in text and "$/hour: unknown" in text and "cost so far: unknown" in text
    assert 'id="total-cost">unknown<' in text
    assert any("price unknown for on-demand c5.large" in r.getMessage() for r in caplog.records)
