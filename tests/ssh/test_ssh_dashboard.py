"""The dashboard of a pool on SSH hosts (the sshd lab): the page loads in a real browser and lists the nodes,
their hosts, the tasks they finished and each node's bootstrap phase."""

from __future__ import annotations

import html
import os
from collections import Counter

from browser import node_rows, rendered_dom
from sshd_lab import Lab

import skyward as sky


def node_name(index: int) -> str:
    return os.environ["SKYWARD_NODE"]


def test_the_dashboard_of_an_ssh_pool_lists_its_nodes_hosts_and_bootstrap(lab: Lab, ssh_provider) -> None:
    provider = ssh_provider("alpha", "beta")
    with sky.ComputePool(
        provider=provider, nodes=2, worker=sky.Worker(concurrency=2), dashboard=True
    ) as pool:
        ran = Counter(pool.map(node_name, range(16)))
        assert pool.dashboard_url is not None
        dom = rendered_dom(pool.dashboard_url)
        nodes = {n.name: n.host for n in pool.nodes}
    rows = node_rows(dom)
    assert set(rows) == set(nodes)
    for name, row in rows.items():
        assert row["done"] == str(ran[name]) and row["state"] == "ready"
    text = html.unescape(dom)
    for name, host in nodes.items():
        assert f"<td>{host}</td>" in text  # the host column
    provisioning = text[text.index('id="provisioning"') :]
    for name in nodes:  # each node's last bootstrap phase: ready
        assert f"<td>{name}</td>" in provisioning
    assert provisioning.count("<td>ready</td>") >= 2
