"""Shared fixtures for the core tests: real worker processes, nothing of ours mocked."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

import skyward as sky


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background of a non-interactive shell (`pytest &`, as some CI runners and scripts do)
    # inherits SIGINT ignored, and so would every process it starts: the Ctrl-C tests would fail for that alone.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def pool2() -> Iterator[sky.ComputePool]:
    """Two local nodes with two thread slots each, shared by the tests of a module."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        yield pool
