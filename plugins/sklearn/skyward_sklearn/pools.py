"""`ScikitLearnPool` and `sklearn_backend`: the scikit-learn API of the older docs, over `ComputePool`.

``ScikitLearnPool(nodes=2, concurrency=4)`` is ``ComputePool(nodes=2, worker=Worker(concurrency=4),
plugins=[sky.plugins.sklearn()])``; resource parameters go to `ComputePool` as in `skyward_joblib.JoblibPool`.
``skyward.integrations`` re-exports these names lazily, so the core imports no plugin package.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from skyward_joblib import JoblibPlugin, SkywardBackend
from skyward_joblib.pools import joblib_backend, pool_arguments

from skyward.image import Image
from skyward.pool import ComputePool
from skyward.providers.base import Provider
from skyward.spec import DEFAULT_ALLOCATION
from skyward.volumes import S3Volume
from skyward_sklearn.plugin import SklearnPlugin


@contextmanager
def sklearn_backend(pool: ComputePool | None = None) -> Iterator[SkywardBackend]:
    """Run scikit-learn's ``n_jobs`` (and joblib's ``Parallel``) on `pool` (default: the active pool).

    scikit-learn parallelizes through joblib, so this is `skyward_joblib.joblib_backend`: the joblib plugin's
    activation for a pool created without it. Yields the active backend.

    Example::

        with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4)) as pool, sklearn_backend(pool):
            GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)
    """
    with joblib_backend(pool) as backend:
        yield backend


class ScikitLearnPool(ComputePool):
    """A `ComputePool` with the scikit-learn plugin: ``n_jobs=-1`` in scikit-learn uses every slot.

    The arguments are `skyward_joblib.JoblibPool`'s (``joblib_version`` included: ``None`` pins the client's
    joblib), plus ``sklearn_version`` (``None`` pins the client's scikit-learn).

    Example::

        with ScikitLearnPool(nodes=2, concurrency=4):
            GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)
    """

    def __init__(
        self,
        provider: Provider | None = None,
        nodes: int = 1,
        concurrency: int = 1,
        machine: str | None = None,
        image: Image | None = None,
        accelerator: str | None = None,
        cpu: int | None = None,
        memory: str | None = None,
        allocation: str = DEFAULT_ALLOCATION,
        timeout: float | None = 3600,
        sklearn_version: str | None = None,
        joblib_version: str | None = None,
        *,
        vcpus: int | None = None,
        memory_gb: float | None = None,
        volume: Sequence[S3Volume] | None = None,
    ) -> None:
        def make_plugin(task_timeout: float | None) -> object:
            plugin = SklearnPlugin(sklearn_version, task_timeout=task_timeout)
            if joblib_version is not None:  # the plugin pins the client's joblib unless told otherwise
                plugin.joblib = JoblibPlugin(joblib_version, task_timeout=task_timeout)
            return plugin

        super().__init__(
            **pool_arguments(
                make_plugin,
                provider,
                nodes,
                concurrency,
                image,
                timeout,
                machine=machine,
                accelerator=accelerator,
                cpu=cpu,
                memory=memory,
                allocation=allocation,
                vcpus=vcpus,
                memory_gb=memory_gb,
                volume=volume,
            )
        )
