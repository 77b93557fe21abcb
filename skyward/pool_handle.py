"""`PoolHandle`: what a plugin's ``around_client`` gets of the pool — its public API, none of its internals."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from skyward.image import Image
    from skyward.pool import ComputePool
    from skyward.pool_stats import PoolStats
    from skyward.providers.base import NodeInfo
    from skyward.scheduler import TaskFuture
    from skyward.spec import ClusterSpec
    from skyward.window import Window

R = TypeVar("R")


class PoolHandle:
    """A narrow view of an active pool for plugins: submitting work and reading its shape.

    No secrets, no scheduler, no links: a plugin works with the pool the way user code does. Its
    ``repr`` is the pool's.
    """

    __slots__ = ("_pool",)

    def __init__(self, pool: ComputePool) -> None:
        self._pool = pool

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """`ComputePool.submit`."""
        return self._pool.submit(fn, *args, **kwargs)

    def window(self, limit: int | None, *, prefetch: bool = True, stop_on_error: bool = False) -> Window:
        """`ComputePool.window`."""
        return self._pool.window(limit, prefetch=prefetch, stop_on_error=stop_on_error)

    def submit_to(self, node: int, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """`ComputePool.submit_to`."""
        return self._pool.submit_to(node, fn, *args, **kwargs)

    def broadcast(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> list[R]:
        """`ComputePool.broadcast`."""
        return self._pool.broadcast(fn, *args, **kwargs)

    def preload(self, *modules: str) -> list[TaskFuture]:
        """`ComputePool.preload`."""
        return self._pool.preload(*modules)

    def cancel_all(self) -> int:
        """`ComputePool.cancel_all`."""
        return self._pool.cancel_all()

    @property
    def quiet(self) -> bool:
        """`ComputePool.quiet`: show no progress."""
        return self._pool.quiet

    @property
    def total_slots(self) -> int:
        return self._pool.total_slots

    @property
    def concurrency(self) -> int:
        return self._pool.concurrency

    @property
    def nodes(self) -> list[NodeInfo]:
        return self._pool.nodes

    @property
    def stats(self) -> PoolStats:
        return self._pool.stats

    @property
    def pool_id(self) -> str:
        return self._pool.pool_id

    @property
    def image(self) -> Image:
        """The image the nodes were built from (after every plugin's ``image_transform``)."""
        return self._pool.image

    @property
    def cluster(self) -> ClusterSpec:
        return self._pool.cluster

    def __repr__(self) -> str:
        return repr(self._pool)
