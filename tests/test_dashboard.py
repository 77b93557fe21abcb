"""The live dashboard: a real browser renders what the pool did; the server is private to this user and block.

The page is loaded in headless chromium (tests/browser.py) and checked from its rendered DOM; the server's
guarantees (a token, loopback only, no secret or task argument in any response, the port free after the block)
are checked with plain HTTP.
"""

from __future__ import annotations

import base64
import html
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from browser import node_rows, rendered_dom

import skyward as sky


@sky.compute
def node_of(index: int) -> tuple[str, str]:
    return os.environ["SKYWARD_NODE"], os.environ["OMP_NUM_THREADS"]


@sky.compute
def broken(tag: str) -> None:
    raise ValueError(f"seven is broken {tag}")


@sky.compute
def length(text: str) -> int:
    return len(text)


@sky.compute
def refuses(text: str) -> None:
    raise ValueError("no argument here")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _base(pool: sky.ComputePool) -> tuple[str, str]:
    url = pool.dashboard_url
    assert url is not None
    base, _, token = url.partition("?token=")
    return base, token


def test_the_page_shows_each_node_its_finished_tasks_and_a_failures_traceback() -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), dashboard=True) as pool:
        results = [f.result(timeout=60) for f in [node_of(i) > pool for i in range(24)]]
        ran = Counter(name for name, _ in results)
        threads = dict(results)  # each node's native thread limit, as its tasks see it
        with pytest.raises(ValueError, match="seven is broken"):
            broken("tb-marker-41") >> pool
        assert pool.dashboard_url is not None
        dom = rendered_dom(pool.dashboard_url)
        rows = node_rows(dom)
        failed_on = {n.name for n in pool.stats.nodes if n.failed}
        names = {n.name for n in pool.nodes}
    assert set(rows) == names and len(rows) == 2
    for name, row in rows.items():
        assert row["done"] == str(ran[name]), (name, row, ran)  # where the tasks really ran (SKYWARD_NODE)
        assert row["failed"] == ("1" if name in failed_on else "0")
        assert row["state"] == "ready"
        assert row["threads"] == threads[name]
    text = html.unescape(dom)
    assert "ValueError: seven is broken tb-marker-41" in text  # the remote traceback, in the failures panel
    assert 'raise ValueError(f"seven is broken {tag}")' in text
    assert '<rect x="' in dom and 'class="task failed"' in dom  # the task stream drew the bars


def test_requests_need_the_token_and_carry_no_secret_nor_task_argument() -> None:
    with sky.ComputePool(nodes=1, dashboard=True) as pool:
        assert node_of(0) >> pool
        marker = "argument-sentinel-93"
        assert length(marker) >> pool == len(marker)
        with pytest.raises(ValueError, match="no argument here"):
            refuses(marker) >> pool
        base, token = _base(pool)
        assert base.startswith("http://127.0.0.1:")
        for path in ("", "api/snapshot"):
            assert _get(base + path)[0] == 401
            assert _get(base + path + "?token=" + token[:-1] + "x")[0] == 403
        status, page = _get(pool.dashboard_url or "")
        status2, data = _get(base + "api/snapshot?token=" + token)
        assert status == status2 == 200
        secret = pool._secret
        for body in (page, data):
            for form in (
                secret.hex(),
                base64.b64encode(secret).decode(),
                base64.urlsafe_b64encode(secret).decode(),
            ):
                assert form not in body
            assert marker not in body
        assert pool.stats.nodes[0].name in data


def test_loopback_only_and_the_port_is_free_after_the_block() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        chosen = probe.getsockname()[1]
    with sky.ComputePool(nodes=1, dashboard=chosen) as pool:
        base, _ = _base(pool)
        assert base == f"http://127.0.0.1:{chosen}/"
        others = _other_addresses()
        for address in others:
            with socket.socket() as outside, pytest.raises(OSError):
                outside.settimeout(2)
                outside.connect((address, chosen))
    with socket.socket() as again:  # free: it can be bound again at once
        again.bind(("127.0.0.1", chosen))
    with socket.socket() as closed, pytest.raises(ConnectionRefusedError):
        closed.connect(("127.0.0.1", chosen))


def _other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (the dashboard must not answer on them)."""
    addresses = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("10.255.255.255", 1))  # no packet is sent: only the routing table is read
            addresses.add(udp.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in addresses if not a.startswith("127."))


def test_without_aiohttp_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"skyward\[dashboard\]"):
        with sky.ComputePool(nodes=1, dashboard=True):
            pass


@pytest.mark.parametrize("value", [-1, 0, 70000, "8787", 1.5])
def test_dashboard_takes_a_bool_or_a_port(value: object) -> None:
    with pytest.raises(ValueError, match="dashboard"):
        sky.ComputePool(dashboard=value)  # type: ignore[arg-type]


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_running_joblib_call_shows_its_batches_done_of_submitted() -> None:
    joblib = pytest.importorskip("joblib")
    with sky.ComputePool(
        nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()], dashboard=True
    ) as pool:
        base, token = _base(pool)
        seen: list[dict[str, object]] = []
        with ThreadPoolExecutor(1) as side:
            call = side.submit(
                lambda: joblib.Parallel(n_jobs=-1, batch_size=1)(joblib.delayed(nap)(0.1) for _ in range(40))
            )
            while not call.done():
                calls = json.loads(_get(base + "api/snapshot?token=" + token)[1])["calls"]
                seen += [c for c in calls if str(c["label"]).startswith("joblib")]
                time.sleep(0.1)
            assert call.result() == [0.1] * 40
        after = json.loads(_get(base + "api/snapshot?token=" + token)[1])["calls"]
    assert seen, "the call's progress never showed"
    assert any(0 < int(c["done"]) < 40 for c in seen)  # seen part-way
    assert all(int(c["done"]) <= int(c["total"]) <= 40 for c in seen)
    assert not [c for c in after if str(c["label"]).startswith("joblib")]  # gone once the call ended


def test_a_port_in_use_fails_the_pool_entry_and_leaves_nothing_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pool = sky.ComputePool(nodes=1, dashboard=port)
        with pytest.raises(OSError), pool:
            pass
        assert pool.nodes == [] and pool.dashboard_url is None
    with pool:  # the same pool starts once the port is free
        assert pool.dashboard_url == f"http://127.0.0.1:{port}/?token={pool.dashboard_url.split('=')[-1]}"
        assert node_of(0) >> pool


def test_while_provisioning_the_nodes_its_bootstrap_names_are_starting() -> None:
    from skyward.bootstrap import BootstrapEvent
    from skyward.dashboard.snapshot import Watch, build

    pool = sky.ComputePool(nodes=2)  # not entered: no node is up yet
    watch = Watch(pool.pool_id)
    watch.on_bootstrap(BootstrapEvent(f"{pool.pool_id}-node-0", "alpha", "install", "uv sync", 3.2))
    watch.on_bootstrap(BootstrapEvent("sky-otherpool-node-0", "beta", "probe", "", 0.1))  # another pool's
    data = build(pool, watch, 0.0)
    assert [(n["name"], n["state"], n["phase"], n["host"]) for n in data["nodes"]] == [
        (f"{pool.pool_id}-node-0", "starting", "install", "alpha")
    ]
    assert list(data["provisioning"]) == [f"{pool.pool_id}-node-0"]
    assert data["pool"]["active"] is False
