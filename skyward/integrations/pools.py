"""`JoblibPool` and `ScikitLearnPool`: the pool classes of the older docs, as thin layers over `ComputePool`.

``JoblibPool(nodes=2, concurrency=4)`` is ``ComputePool(nodes=2, worker=Worker(concurrency=4),
plugins=[sky.plugins.joblib()])``. Resource parameters of the older API (``machine``, ``accelerator``, ``cpu``,
``memory``, ``allocation``, and the spellings ``vcpus`` and ``memory_gb``) go to `ComputePool` as they are:
providers that choose machines (`sky.AWS`) honour them, the others refuse them with a clear error, never ignore
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skyward.image import Image
from skyward.integrations._plugins import require
from skyward.pool import ComputePool
from skyward.providers.base import Provider
from skyward.spec import DEFAULT_ALLOCATION, Worker


def _pool_arguments(
    make_plugin: Callable[[float | None], object],
    provider: Provider | None,
    nodes: int,
    concurrency: int,
    image: Image | None,
    timeout: float | None,
    **resources: Any,
) -> dict[str, Any]:
    """`ComputePool`'s arguments for the older API's. `ComputePool` refuses what the provider cannot honour."""
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    return {
        "provider": provider,
        "nodes": nodes,
        "worker": Worker(concurrency=concurrency),
        "image": image,
        "plugins": [make_plugin(timeout)],
        **resources,
    }


class JoblibPool(ComputePool):
    """A `ComputePool` with the joblib plugin: ``Parallel(n_jobs=-1)`` inside the block uses every slot.

    Args:
        provider: where nodes run; ``None`` is `sky.Local()`.
        nodes: how many nodes.
        concurrency: slots per node (tasks one node runs at once).
        machine: a machine type by name (see `ComputePool`); refused (``ValueError``) where the provider
            cannot honour it, as are the next three.
        accelerator: an accelerator and optional count per node, e.g. ``"T4"``.
        cpu: at least this many vCPUs per node.
        memory: at least this much memory per node, e.g. ``"16GB"``.
        image: the node image; joblib is added to it.
        allocation: ``"spot-if-available"``, ``"always-spot"`` or ``"on-demand"``; anything but the default is
            refused where the provider has no spot market.
        timeout: seconds a joblib batch may take before ``Parallel`` raises ``TimeoutError`` (a default for
            ``Parallel`` calls that pass no ``timeout``); ``None`` for no limit.
        joblib_version: joblib for the nodes; ``None`` pins the client's version.
        vcpus: another name for ``cpu``; give one of the two.
        memory_gb: ``memory`` as a number of GB (``memory_gb=16`` is ``memory="16GB"``); give one of the two.

    Example::

        with JoblibPool(nodes=2, concurrency=4) as pool:
            Parallel(n_jobs=-1)(delayed(f)(x) for x in data)     # pool.total_slots == 8
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
        joblib_version: str | None = None,
        *,
        vcpus: int | None = None,
        memory_gb: float | None = None,
    ) -> None:
        def make_plugin(task_timeout: float | None) -> object:
            skyward_joblib = require("skyward_joblib", "skyward-joblib")
            return skyward_joblib.JoblibPlugin(joblib_version, task_timeout=task_timeout)

        super().__init__(
            **_pool_arguments(
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
            )
        )


class ScikitLearnPool(ComputePool):
    """A `ComputePool` with the scikit-learn plugin: ``n_jobs=-1`` in scikit-learn uses every slot.

    The arguments are `JoblibPool`'s (``joblib_version`` included: ``None`` pins the client's joblib), plus
    ``sklearn_version`` (``None`` pins the client's scikit-learn).

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
    ) -> None:
        def make_plugin(task_timeout: float | None) -> object:
            skyward_sklearn = require("skyward_sklearn", "skyward-sklearn")
            plugin = skyward_sklearn.SklearnPlugin(sklearn_version, task_timeout=task_timeout)
            if joblib_version is not None:  # the plugin pins the client's joblib unless told otherwise
                skyward_joblib = require("skyward_joblib", "skyward-joblib")
                plugin.joblib = skyward_joblib.JoblibPlugin(joblib_version, task_timeout=task_timeout)
            return plugin

        super().__init__(
            **_pool_arguments(
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
            )
        )
