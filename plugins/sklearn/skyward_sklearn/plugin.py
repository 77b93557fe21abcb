"""The scikit-learn plugin: ``sky.plugins.sklearn()``."""

from __future__ import annotations

from contextlib import AbstractContextManager

from skyward_joblib import JoblibPlugin, SkywardBackend, exact_version

import skyward
from skyward import ClusterSpec, ComputePool, Image


class SklearnPlugin:
    """scikit-learn and joblib on the nodes; the skyward joblib backend active while the pool's block runs.

    Args:
        version: the scikit-learn version for the nodes; ``None`` pins the client's.
        task_timeout: a default ``timeout`` in seconds for the block's ``Parallel`` calls that set none.

    joblib is always pinned to the client's version: scikit-learn's tasks travel as joblib batches.
    """

    def __init__(self, version: str | None = None, *, task_timeout: float | None = None) -> None:
        self.version = exact_version("scikit-learn", version)
        self.joblib = JoblibPlugin(task_timeout=task_timeout)

    @skyward.hookimpl
    def image_transform(self, image: Image, cluster: ClusterSpec) -> Image:
        return image.with_pip(f"scikit-learn=={self.version}", f"joblib=={self.joblib.version}")

    @skyward.hookimpl
    def around_client(
        self, pool: ComputePool, cluster: ClusterSpec
    ) -> AbstractContextManager[SkywardBackend]:
        # The same activation as the joblib plugin: scikit-learn's n_jobs is joblib's.
        backend = self.joblib.around_client(pool, cluster)
        warm_up(pool)
        return backend

    def __repr__(self) -> str:
        return f"skyward.plugins.sklearn(version={self.version!r})"


def warm_up(pool: ComputePool) -> None:
    """Start importing scikit-learn on every node now, without waiting.

    The import takes seconds (5 s on a busy 2-CPU machine, measured): at pool entry it overlaps with the user's
    own work (loading data, say) instead of delaying the first fits.
    """
    # _fit_and_score's module: what every distributed fit unpickles first (scipy, pandas if present, ...).
    pool.preload("sklearn.model_selection._validation")


def plugin(version: str | None = None, *, task_timeout: float | None = None) -> SklearnPlugin:
    """``sky.plugins.sklearn(version=None, task_timeout=None)``: the entry point of the ``skyward.plugins`` group.

    Takes every option of `SklearnPlugin` and forwards it.

    Example::

        with sky.ComputePool(nodes=4, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.sklearn()]):
            cross_val_score(RandomForestClassifier(), X, y, cv=10, n_jobs=-1)
    """
    return SklearnPlugin(version, task_timeout=task_timeout)
