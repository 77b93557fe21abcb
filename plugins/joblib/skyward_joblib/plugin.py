"""The joblib plugin: ``sky.plugins.joblib()`` pins joblib on the nodes and activates the skyward backend."""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib.metadata import version as installed_version

from packaging.version import InvalidVersion, Version

import skyward
from skyward import ClusterSpec, ComputePool, Image
from skyward_joblib.activation import skyward_backend
from skyward_joblib.backend import SkywardBackend


def exact_version(package: str, requested: str | None) -> str:
    """`requested` checked as a version, or the version of `package` installed here.

    Nodes get the client's version by default because pickled joblib batches (and scikit-learn estimators) are
    not portable across versions.
    """
    if requested is None:
        return installed_version(package)
    try:
        Version(requested)
    except InvalidVersion as exc:
        raise ValueError(
            f"{package} version must be an exact version like '1.5.2', got {requested!r}"
        ) from exc
    return requested


class JoblibPlugin:
    """Runs ``joblib.Parallel`` on the pool's slots while the pool's block is active.

    Args:
        version: the joblib version for the nodes; ``None`` pins the client's (pickled batches are not portable
            across joblib versions, so change it only when you know both sides match).
        task_timeout: a default ``timeout`` in seconds for the block's ``Parallel`` calls that set none.
    """

    def __init__(self, version: str | None = None, *, task_timeout: float | None = None) -> None:
        self.version = exact_version("joblib", version)
        if task_timeout is not None and task_timeout <= 0:
            raise ValueError(f"task_timeout must be positive, got {task_timeout}")
        self.task_timeout = task_timeout

    @skyward.hookimpl
    def image_transform(self, image: Image, cluster: ClusterSpec) -> Image:
        return image.with_pip(f"joblib=={self.version}")

    @skyward.hookimpl
    def around_client(
        self, pool: ComputePool, cluster: ClusterSpec
    ) -> AbstractContextManager[SkywardBackend]:
        warm_up(pool)
        return skyward_backend(pool, task_timeout=self.task_timeout)

    def __repr__(self) -> str:
        return f"skyward.plugins.joblib(version={self.version!r})"


def warm_up(pool: ComputePool) -> None:
    """Start importing joblib (and this plugin) on every node now, without waiting.

    The first batch a node unpickles imports joblib (about half a second): done at pool entry, it overlaps
    with whatever the user does before the first ``Parallel`` call, and is not counted in a batch's timeout.
    Importing this plugin there also makes ``Parallel(backend="skyward")`` inside any task resolve (it runs in
    place, nested).
    """
    pool.preload("skyward_joblib")


def plugin(version: str | None = None, *, task_timeout: float | None = None) -> JoblibPlugin:
    """``sky.plugins.joblib(version=None, task_timeout=None)``: the entry point of the ``skyward.plugins`` group.

    Takes every option of `JoblibPlugin` and forwards it.

    Example::

        with sky.ComputePool(nodes=4, worker=sky.Worker(concurrency=8), plugins=[sky.plugins.joblib()]):
            Parallel(n_jobs=-1)(delayed(f)(x) for x in data)      # 32 slots
    """
    return JoblibPlugin(version, task_timeout=task_timeout)
