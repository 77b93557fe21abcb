"""Shared fixtures for the core tests: real worker processes, nothing of ours mocked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import skyward as sky


@pytest.fixture(scope="module")
def pool2() -> Iterator[sky.ComputePool]:
    """Two local nodes with two thread slots each, shared by the tests of a module."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        yield pool
