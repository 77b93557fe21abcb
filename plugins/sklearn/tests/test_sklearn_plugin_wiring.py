"""The scikit-learn plugin through the pool's hooks, ScikitLearnPool, and warning filters scikit-learn pickles."""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
import skyward_sklearn
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.svm import SVC
from sklearn_plugin_tasks import RecordingScorer
from skyward_joblib import SkywardBackend

import skyward as sky
from skyward.integrations import ScikitLearnPool

X, y = load_iris(return_X_y=True)


def test_sky_plugins_sklearn_resolves_through_the_entry_point() -> None:
    entry = sky.plugins.available()["sklearn"]
    assert entry.group == "skyward.plugins" and entry.value == "skyward_sklearn:plugin"
    assert sky.plugins.sklearn is skyward_sklearn.plugin
    plugin = sky.plugins.sklearn()
    assert plugin.version == sklearn.__version__
    with pytest.raises(ValueError, match="exact version"):
        sky.plugins.sklearn(version="newest")


def test_scikit_learn_pool_pins_and_distributes(tmp_path: Path) -> None:
    scorer = RecordingScorer(tmp_path)
    with ScikitLearnPool(nodes=1, concurrency=3) as pool:  # one node: each one imports scikit-learn (slow)
        assert isinstance(pool, sky.ComputePool) and pool.total_slots == 3
        assert f"scikit-learn=={sklearn.__version__}" in pool.image.pip
        assert f"joblib=={joblib.__version__}" in pool.image.pip
        backend, _ = joblib.parallel.get_active_backend()
        assert isinstance(backend, SkywardBackend) and backend.pool.pool_id == pool.pool_id  # a PoolHandle
        search = GridSearchCV(SVC(), {"C": [0.5, 1.0, 2.0]}, cv=4, scoring=scorer, n_jobs=-1).fit(X, y)
        assert search.best_params_ == GridSearchCV(SVC(), {"C": [0.5, 1.0, 2.0]}, cv=4).fit(X, y).best_params_
        assert scorer.pids() == {node.pid for node in pool.nodes}
        assert os.getpid() not in scorer.pids()
    assert not isinstance(joblib.parallel.get_active_backend()[0], SkywardBackend)


def test_a_scikit_learn_version_the_nodes_lack_is_refused() -> None:
    with pytest.raises(sky.ProvisionError, match=r"scikit-learn==0\.0\.1"):
        with ScikitLearnPool(sklearn_version="0.0.1"):
            pass


class ClientOnlyWarning(UserWarning):
    """A category the nodes cannot import, like one from pytest or a cloud SDK the nodes lack.

    Local nodes share this machine's packages (and this test directory), so it is published under a module name
    that exists only in this process.
    """


def test_warning_filters_with_a_foreign_category_do_not_break_remote_fits(tmp_path: Path) -> None:
    client_only = types.ModuleType("skyward_sklearn_client_only_warnings")
    ClientOnlyWarning.__module__ = client_only.__name__
    client_only.ClientOnlyWarning = ClientOnlyWarning  # type: ignore[attr-defined]
    sys.modules[client_only.__name__] = client_only
    scorer = RecordingScorer(tmp_path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ClientOnlyWarning)
            before = list(warnings.filters)
            with sky.ComputePool(
                nodes=1, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.sklearn()]
            ) as pool:
                # scikit-learn pickles warnings.filters into every task; the node must be able to load them
                scores = cross_val_score(SVC(), X, y, cv=4, scoring=scorer, n_jobs=-1)
                assert scorer.pids() == {pool.nodes[0].pid}
            assert warnings.filters == before
            assert all(a is b for a, b in zip(warnings.filters, before, strict=True))
        np.testing.assert_array_equal(scores, cross_val_score(SVC(), X, y, cv=4))
    finally:
        del sys.modules[client_only.__name__]
        ClientOnlyWarning.__module__ = __name__
