"""Large arguments arrive read-only and shared by default; `sky.writable` gives each task a writable copy.

Every task below writes into its argument and reports what it found there first: a task that sees an earlier
task's write got a copy that was not its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import skyward as sky


def first_item(obj: Any) -> float:
    if isinstance(obj, pd.DataFrame):
        return float(obj.iloc[0, 0])
    if isinstance(obj, np.ndarray):
        return float(obj[(0,) * obj.ndim])
    return float(obj[0])


def write_first_item(obj: Any) -> tuple[float, int]:
    """Add 1 to the first item of `obj` in place; return what was there before, and where this ran."""
    before = first_item(obj)
    if isinstance(obj, pd.DataFrame):
        obj.iloc[0, 0] = before + 1
    elif isinstance(obj, np.ndarray):
        obj[(0,) * obj.ndim] = before + 1
    else:
        obj[0] = int(before) + 1
    assert first_item(obj) == before + 1
    return before, os.getpid()


remote_write = sky.compute(write_first_item)


KINDS: dict[str, Callable[[], Any]] = {
    "numpy contiguous": lambda: np.zeros(500_000),
    "numpy fortran order": lambda: np.zeros((1000, 500), order="F"),
    "numpy strided view": lambda: np.zeros((2000, 400))[:, ::2],
    "bytearray": lambda: bytearray(1 << 20),
    "memoryview": lambda: memoryview(bytearray(1 << 20)),
    "pandas dataframe": lambda: pd.DataFrame({"x": np.zeros(100_000), "y": np.ones(100_000)}),
}


@pytest.fixture(scope="module", params=["thread", "process"])
def pool(request: pytest.FixtureRequest) -> Iterator[sky.ComputePool]:
    # One slot: every task runs where the previous one wrote, on the same copy of the node if it were shared.
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1, executor=request.param)) as pool:
        yield pool


@pytest.mark.parametrize("kind", KINDS)
def test_each_task_gets_a_writable_copy_of_its_own(pool: sky.ComputePool, kind: str) -> None:
    obj = KINDS[kind]()
    sent = pool.stats.blobs_sent
    results = [remote_write(sky.writable(obj)) >> pool for _ in range(3)]
    assert [before for before, _ in results] == [0.0, 0.0, 0.0], "a task saw another task's write"
    assert os.getpid() not in {pid for _, pid in results}
    assert first_item(obj) == 0.0, "the client's object changed"
    assert pool.stats.blobs_sent == sent + 1, "a writable argument still travels to each node once"


def test_arrays_are_shared_read_only_by_default(pool: sky.ComputePool) -> None:
    with pytest.raises(ValueError, match="read-only"):
        remote_write(np.zeros(500_000)) >> pool


@pytest.mark.parametrize("kind", ["bytearray", "pandas dataframe"])
def test_mutable_kinds_do_not_leak_between_tasks_by_default(pool: sky.ComputePool, kind: str) -> None:
    # A bytearray is copied for each task; a pandas object is a copy-on-write copy: writes stay in the task.
    obj = KINDS[kind]()
    results = [remote_write(obj) >> pool for _ in range(3)]
    assert [before for before, _ in results] == [0.0, 0.0, 0.0]


def test_a_small_writable_argument_travels_inline_and_writable(pool: sky.ComputePool) -> None:
    sent = pool.stats.blobs_sent
    assert (remote_write(sky.writable(np.zeros(1000))) >> pool)[0] == 0.0
    assert pool.stats.blobs_sent == sent


def test_writable_refuses_what_cannot_be_written() -> None:
    with pytest.raises(TypeError, match="bytearray"):
        sky.writable(b"immutable")
    with pytest.raises(TypeError, match="not list"):
        sky.writable([1, 2, 3])
    with pytest.raises(TypeError, match="object dtype"):
        sky.writable(np.array(["a"], dtype=object))
