"""Fixtures of the scikit-learn plugin tests: real local worker processes, nothing of ours mocked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import skyward as sky


@pytest.fixture(scope="module")
def sklearn_pool() -> Iterator[sky.ComputePool]:
    """Two local nodes with two thread slots each and the scikit-learn plugin, shared by a module's tests."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.sklearn()]) as pool:
        yield pool
