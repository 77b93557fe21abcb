"""Fixtures of the joblib plugin tests: real local worker processes, nothing of ours mocked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import skyward as sky


@pytest.fixture(scope="module")
def joblib_pool() -> Iterator[sky.ComputePool]:
    """Two local nodes with four thread slots each and the joblib plugin, shared by a module's tests."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.joblib()]) as pool:
        yield pool


@pytest.fixture(scope="module")
def worker_pids(joblib_pool: sky.ComputePool) -> set[int]:
    return {node.pid for node in joblib_pool.nodes}
