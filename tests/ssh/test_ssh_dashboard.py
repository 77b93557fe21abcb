"""The dashboard of a pool on SSH hosts (the sshd lab): the page loads in a real browser and lists the nodes,
their hosts, the tasks they finished and each node's bootstrap phase."""

from __future__ import annotations

import html
import os
from collections import Counter

import pytest
from browser import node_rows, rendered_dom
from sshd_lab import Lab

import skyward as sky


@pytest.fixture(scope="module")
def own_hosts(lab: Lab) -> tuple[str, str]:
    """Two hosts of this module's own, with their own homes: the session's hosts keep the state other modules
    expect of them (test_ssh_end_to_end counts the uploads of their first bootstrap)."""
    names = ("dash-a", "dash-b")
    for name in names:
        if name not in lab.hosts:
            lab.add_loopback_host(name)
    return names


def node_name(index: int) -> str:
    return os.environ["SKYWARD_NODE"]


def test_the_dashboard_of_an_ssh_pool_lists_its_nodes_hosts_and_bootstrap(
    own_hosts: tuple[str, str], ssh_provider
) -> None:
    provider = ssh_provider(*own_hosts, offline=True)  # shipped wheels: the test reaches no index
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
