"""Entering a pool with the scikit-learn plugin starts importing scikit-learn on every node."""

from __future__ import annotations

import os
import sys

import skyward as sky


def sklearn_loaded() -> tuple[int, bool]:
    # Looks without importing: this function's own unpickling pulls in nothing of scikit-learn.
    return os.getpid(), "sklearn.model_selection._validation" in sys.modules


def test_nodes_import_sklearn_at_pool_entry() -> None:
    # One slot per node, tasks in order: the check runs after the warm-up task that entry queued on each node.
    with sky.ComputePool(nodes=2, plugins=[sky.plugins.sklearn()]) as pool:
        seen = pool.broadcast(sklearn_loaded)
    assert all(pid != os.getpid() for pid, _ in seen)
    assert [loaded for _, loaded in seen] == [True, True]


def test_without_the_plugin_nodes_do_not_import_it() -> None:
    with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as pool:
        ((pid, loaded),) = pool.broadcast(sklearn_loaded)
    assert pid != os.getpid() and not loaded
