"""`JoblibPool` and `joblib_backend`: the joblib API of the older docs, as thin layers over `ComputePool`.

``JoblibPool(nodes=2, concurrency=4)`` is ``ComputePool(nodes=2, worker=Worker(concurrency=4),
plugins=[sky.plugins.joblib()])``. Resource parameters of the older API (``machine``, ``accelerator``, ``cpu``,
``memory``, ``allocation``, and the spellings ``vcpus`` and ``memory_gb``) go to `ComputePool` as they are:
providers that choose machines (`sky.AWS`) honour them, the others refuse them with a clear error, never ignore
them. ``skyward.integrations`` re-exports these names lazily, so the core imports no plugin package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from skyward.image import Image
from skyward.pool import ComputePool, current_pool
from skyward.providers.base import Provider
from skyward.spec import DEFAULT_ALLOCATION, Worker
from skyward.volumes import S3Volume
from skyward_joblib.activation import skyward_backend
from skyward_joblib.backend import SkywardBackend
from skyward_joblib.plugin import JoblibPlugin


def pool_arguments(
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


@contextmanager
def joblib_backend(pool: ComputePool | None = None) -> Iterator[SkywardBackend]:
    """Run joblib's ``Parallel`` (and scikit-learn's ``n_jobs``) on `pool` (default: the active pool).

    The same activation as the joblib plugin's (`skyward_backend`), for a pool created without the plugin.
    Yields the active backend.
    """
    with skyward_backend(pool if pool is not None else current_pool()) as backend:
        yield backend


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
        volume: `sky.S3Volume` entries each node mounts before its first task (see `ComputePool`).

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
        volume: Sequence[S3Volume] | None = None,
    ) -> None:
        super().__init__(
            **pool_arguments(
                lambda task_timeout: JoblibPlugin(joblib_version, task_timeout=task_timeout),
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
