"""Opt-in tests against the real Verda and VastAI APIs: they rent one machine each, for a minute or two.

``SKYWARD_REAL_VERDA=1`` with ``VERDA_CLIENT_ID`` and ``VERDA_CLIENT_SECRET``; ``SKYWARD_REAL_VASTAI=1`` with
``VAST_API_KEY`` (or the vastai CLI's key file). Skipped otherwise. They cost a few cents.
"""

from __future__ import annotations

import os
import platform

import pytest

import skyward as sky


def _node() -> dict[str, str]:
    return {"host": platform.node(), "python": platform.python_version()}


@pytest.mark.real_cloud
@pytest.mark.skipif(
    os.environ.get("SKYWARD_REAL_VERDA") != "1", reason="set SKYWARD_REAL_VERDA=1 (rents a machine)"
)
def test_a_real_verda_pool_runs_and_leaves_nothing() -> None:
    from skyward.providers.verda.api import open_client

    provider = sky.Verda()
    with sky.ComputePool(provider=provider, cpu=2, allocation="on-demand") as pool:
        (result,) = pool.broadcast(_node)
        pool_id = pool.pool_id
    assert result["host"] != platform.node()
    client = open_client(provider)
    assert [i.id for i in client.instances.get() if str(i.hostname).startswith(f"skyward-{pool_id}-")] == []
    assert [k.id for k in client.ssh_keys.get() if k.name == f"skyward-{pool_id}"] == []


@pytest.mark.real_cloud
@pytest.mark.skipif(
    os.environ.get("SKYWARD_REAL_VASTAI") != "1", reason="set SKYWARD_REAL_VASTAI=1 (rents a machine)"
)
def test_a_real_vastai_pool_runs_and_leaves_nothing() -> None:
    from skyward.providers.vastai.api import open_client

    provider = sky.VastAI(max_price=0.5)
    with sky.ComputePool(provider=provider) as pool:
        (result,) = pool.broadcast(_node)
        pool_id = pool.pool_id
    assert result["host"] != platform.node()
    client = open_client(provider)
    assert [r["id"] for r in client.show_instances() if r.get("label") == f"skyward-{pool_id}"] == []
