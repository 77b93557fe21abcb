"""`pool.preload`: modules imported on every node, at unpickling, without the client importing them."""

from __future__ import annotations

import os
import sys

import pytest

import skyward as sky

MODULE = "colorsys"  # in the standard library, and imported by nothing skyward or pytest load


def modules_here(*names: str) -> tuple[int, list[bool]]:
    return os.getpid(), [name in sys.modules for name in names]


def test_preload_imports_on_every_node_and_not_here() -> None:
    if MODULE in sys.modules:
        pytest.skip(f"{MODULE} is already imported in this process")
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        before = pool.broadcast(modules_here, MODULE)
        counts = [future.result(timeout=60) for future in pool.preload(MODULE, "json")]
        after = pool.broadcast(modules_here, MODULE)
    assert counts == [2, 2]
    assert [loaded for _, loaded in before] == [[False], [False]]
    assert [loaded for _, loaded in after] == [[True], [True]]
    assert all(pid != os.getpid() for pid, _ in after)
    assert MODULE not in sys.modules


def test_a_module_the_node_lacks_fails_that_future_only() -> None:
    with sky.ComputePool(nodes=1) as pool:
        (future,) = pool.preload("skyward_no_such_module")
        with pytest.raises(ModuleNotFoundError, match="skyward_no_such_module"):
            future.result(timeout=60)
        assert pool.submit(abs, -3).result(timeout=60) == 3
