"""Shared fixtures for the core tests: real worker processes, nothing of ours mocked."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

import skyward as sky


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """Wait for `pids` to exit; return those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_exists(pid)}
        if alive:
            time.sleep(0.05)
    return alive


@pytest.fixture(scope="module")
def pool2() -> Iterator[sky.ComputePool]:
    """Two local nodes with two thread slots each, shared by the tests of a module."""
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        yield pool
