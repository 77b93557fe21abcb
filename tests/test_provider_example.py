"""The example provider of docs/providers/writing.md (examples/provider_example) runs a real pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import skyward as sky

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "provider_example"))
from capped import Capped


def test_pool_on_the_example_provider_runs_work_in_its_worker_processes() -> None:
    provider = Capped(max_nodes=2)
    with sky.ComputePool(provider=provider, nodes=2) as pool:
        worker_pids = {node.pid for node in pool.nodes}
        ran_in = {pool.submit(os.getpid).result(timeout=60) for _ in range(8)}
        broadcast = pool.broadcast(os.getpid)
    assert os.getpid() not in ran_in
    assert ran_in <= worker_pids and sorted(broadcast) == sorted(worker_pids)
    assert len(worker_pids) == 2 and len(provider.launches) == 1
    assert provider.name == "capped-local" and provider.shares_client_files


def test_the_example_provider_refuses_a_pool_over_its_cap() -> None:
    provider = Capped(max_nodes=1)
    with pytest.raises(sky.ProvisionError, match="at most 1"), sky.ComputePool(provider=provider, nodes=2):
        pass
    assert provider.launches == []
