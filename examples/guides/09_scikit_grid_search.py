"""scikit-learn grid search on a pool: ``GridSearchCV(n_jobs=-1)`` fits every candidate on the nodes.

    uv run python examples/guides/09_scikit_grid_search.py
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/09_scikit_grid_search.py    # a smaller search

The search code is ordinary scikit-learn: inside the pool's block, ``n_jobs=-1`` means every slot of the pool.
The sklearn plugin pins the client's scikit-learn and joblib on the nodes (pickled estimators are not portable
across versions) and routes scikit-learn's joblib calls to the pool.

On AWS only the pool changes: ``sky.ComputePool(provider=sky.AWS(), nodes=4, worker=sky.Worker(concurrency=8),
plugins=[sky.plugins.sklearn()])``.
"""

from __future__ import annotations

import os
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.svm import SVC

import skyward as sky


def import_scikit_learn() -> None:
    """Runs once on every node: importing scikit-learn takes a few seconds, paid before the timing starts."""
    import sklearn.svm  # noqa: F401


def main() -> None:
    small = os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1"
    X, y = load_digits(return_X_y=True)  # 1,797 8x8 images of digits, bundled with scikit-learn
    if small:
        X, y = X[:600], y[:600]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    grid = (
        {"C": [1, 10], "gamma": [1e-3, 1e-4]} if small else {"C": [1, 10, 100], "gamma": [1e-2, 1e-3, 1e-4]}
    )
    folds = 3 if small else 5
    candidates = len(grid["C"]) * len(grid["gamma"])

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.sklearn()]) as pool:
        print(
            f"{candidates} candidates x {folds} folds = {candidates * folds} fits on {pool.total_slots} slots"
        )
        pool.broadcast(import_scikit_learn)
        start = time.perf_counter()
        search = GridSearchCV(SVC(kernel="rbf"), grid, cv=folds, n_jobs=-1)
        search.fit(X_train, y_train)
        print(f"search took {time.perf_counter() - start:.1f}s")

    # The fitted search is an ordinary local object: predicting needs no pool.
    print(f"best parameters: {search.best_params_}")
    print(f"cross-validated accuracy: {search.best_score_:.3f}")
    print(f"held-out accuracy: {search.score(X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
