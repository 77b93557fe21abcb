"""scikit-learn's n_jobs=-1 on the pool: the same results as n_jobs=1 here, with the fits on the nodes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_val_score, cross_validate
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn_plugin_tasks import RecordingScorer

import skyward as sky

X, y = load_iris(return_X_y=True)
GRID = {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]}


def scorers(tmp_path: Path) -> tuple[RecordingScorer, RecordingScorer]:
    (tmp_path / "local").mkdir()
    (tmp_path / "remote").mkdir()
    return RecordingScorer(tmp_path / "local"), RecordingScorer(tmp_path / "remote")


def assert_same_search(distributed: Any, expected: Any) -> None:
    """The distributed search found what the local one did, with the same scores."""
    assert distributed.best_params_ == expected.best_params_
    assert distributed.best_score_ == expected.best_score_
    np.testing.assert_array_equal(
        distributed.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"]
    )


def assert_fitted_on_the_nodes(scorer: RecordingScorer, pool: sky.ComputePool, fits: int) -> None:
    assert scorer.calls() == fits
    assert scorer.pids() == {node.pid for node in pool.nodes}  # every node, only worker processes
    assert os.getpid() not in scorer.pids()


def test_grid_search(sklearn_pool: sky.ComputePool, tmp_path: Path) -> None:
    local, remote = scorers(tmp_path)
    expected = GridSearchCV(SVC(), GRID, cv=5, scoring=local, n_jobs=1).fit(X, y)
    assert local.pids() == {os.getpid()}
    search = GridSearchCV(SVC(), GRID, cv=5, scoring=remote, n_jobs=-1).fit(X, y)
    assert_same_search(search, expected)
    assert_fitted_on_the_nodes(remote, sklearn_pool, fits=6 * 5)


def test_randomized_search(sklearn_pool: sky.ComputePool, tmp_path: Path) -> None:
    local, remote = scorers(tmp_path)
    space = {"max_depth": [1, 2, 3, 4, 5, None], "min_samples_split": [2, 4, 8, 16]}

    def search(n_jobs: int, scorer: RecordingScorer) -> RandomizedSearchCV:
        model = RandomizedSearchCV(
            DecisionTreeClassifier(random_state=0),
            space,
            n_iter=8,
            cv=4,
            random_state=0,
            scoring=scorer,
            n_jobs=n_jobs,
        )
        return model.fit(X, y)

    expected, distributed = search(1, local), search(-1, remote)
    assert_same_search(distributed, expected)
    assert_fitted_on_the_nodes(remote, sklearn_pool, fits=8 * 4)


def test_cross_val_score(sklearn_pool: sky.ComputePool, tmp_path: Path) -> None:
    local, remote = scorers(tmp_path)
    expected = cross_val_score(SVC(C=1.0), X, y, cv=8, scoring=local, n_jobs=1)
    scores = cross_val_score(SVC(C=1.0), X, y, cv=8, scoring=remote, n_jobs=-1)
    np.testing.assert_array_equal(scores, expected)
    assert_fitted_on_the_nodes(remote, sklearn_pool, fits=8)


def test_cross_validate(sklearn_pool: sky.ComputePool, tmp_path: Path) -> None:
    local, remote = scorers(tmp_path)
    expected = cross_validate(SVC(), X, y, cv=8, scoring={"acc": local}, return_train_score=True, n_jobs=1)
    results = cross_validate(SVC(), X, y, cv=8, scoring={"acc": remote}, return_train_score=True, n_jobs=-1)
    np.testing.assert_array_equal(results["test_acc"], expected["test_acc"])
    np.testing.assert_array_equal(results["train_acc"], expected["train_acc"])
    assert_fitted_on_the_nodes(remote, sklearn_pool, fits=8 * 2)  # test and train scores


def test_a_task_error_reaches_the_caller(sklearn_pool: sky.ComputePool) -> None:
    with pytest.raises(ValueError, match="C") as excinfo:
        cross_val_score(SVC(C=-1.0), X, y, cv=4, n_jobs=-1, error_score="raise")
    # raised by a fit on a node, re-raised here with the node's traceback (scikit-learn's parameter validation
    # then wraps it in an exception of the same type)
    chain = [excinfo.value]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    remote = [exc for exc in chain if hasattr(exc, "remote_traceback")]
    assert remote and "in _fit_and_score" in remote[0].remote_traceback  # type: ignore[attr-defined]
