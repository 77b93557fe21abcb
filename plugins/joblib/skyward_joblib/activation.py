"""Turning the skyward backend on for a block: register it for one pool, make it joblib's active backend in every
thread of the process, keep the warning filters portable, and put everything back on exit."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from joblib._parallel_backends import ParallelBackendBase, SequentialBackend
from joblib.parallel import BACKENDS, register_parallel_backend

from skyward_joblib.backend import SkywardBackend
from skyward_joblib.every_thread import ACTIVE
from skyward_joblib.warning_filters import portable_warning_filters

if TYPE_CHECKING:
    from skyward import ComputePool

#: The name joblib knows the backend by: ``parallel_config(backend="skyward")``.
BACKEND_NAME = "skyward"


def named_backend(nesting_level: int | None = None, **backend_kwargs: Any) -> ParallelBackendBase:
    """What ``backend="skyward"`` makes: the pool of the innermost active block for this thread (see
    `skyward_joblib.every_thread`), else a backend that runs nested work in place.

    Outside every pool block of this process, a nested call (inside a task on a node, inside a loky or
    multiprocessing worker, inside another ``Parallel``'s batch) runs sequentially, as the backend's
    ``get_nested_backend`` says; a top-level call raises "skyward backend not configured" when it starts.
    """
    activation = ACTIVE.innermost_here()
    if activation is not None:
        return activation.factory(nesting_level=nesting_level, **backend_kwargs)
    if (nesting_level or 0) >= 1 or os.environ.get("SKYWARD_NODE"):
        return SequentialBackend(nesting_level=max(nesting_level or 0, 1))
    return SkywardBackend(nesting_level=nesting_level, **backend_kwargs)


def register_default() -> None:
    """Register ``"skyward"`` (see `named_backend`) unless something already has that name.

    Outside every pool block a top-level ``Parallel`` call on it raises "skyward backend not configured: use
    it inside a ComputePool block" instead of joblib's "Invalid backend". (In an interpreter that processed
    ``skyward_joblib_names.pth`` the name is already there, pointing here lazily.)
    """
    if BACKEND_NAME not in BACKENDS:
        register_parallel_backend(BACKEND_NAME, named_backend)


@contextmanager
def skyward_backend(pool: ComputePool, *, task_timeout: float | None = None) -> Iterator[SkywardBackend]:
    """Make ``joblib.Parallel`` (and scikit-learn's ``n_jobs``) run on `pool` inside the block, in every thread.

    - every thread that has not chosen a backend itself runs ``Parallel`` on `pool` (the innermost block it
      entered itself, else the last block entered); ``backend="loky"``, ``n_jobs=1`` and a thread's own
      ``parallel_config(backend=...)`` keep working as joblib documents;
    - ``"skyward"`` names this pool for the block (``Parallel(backend="skyward")``);
    - warning filters whose category the nodes cannot import are set aside (see
      `skyward_joblib.warning_filters`);
    - on exit (from any thread, in any order among overlapping blocks) the previous ``"skyward"`` entry,
      joblib's own thread-local configuration object and the exact previous ``warnings.filters`` come back,
      also when the block raises.

    Yields the backend instance of the entering thread. Example::

        with sky.ComputePool(nodes=2) as pool, skyward_backend(pool):
            Parallel(n_jobs=-1)(delayed(f)(x) for x in range(100))
    """
    factory: Callable[..., SkywardBackend] = functools.partial(
        _bound_backend, pool, task_timeout=task_timeout
    )
    with portable_warning_filters(pool.image):
        activation = ACTIVE.enter(factory, named_backend)
        try:
            yield ACTIVE.backend_of_this_thread()
        finally:
            ACTIVE.exit(activation)


def _bound_backend(
    pool: ComputePool,
    *,
    task_timeout: float | None,
    nesting_level: int | None = None,
    **backend_kwargs: Any,
) -> SkywardBackend:
    return SkywardBackend(pool, task_timeout=task_timeout, nesting_level=nesting_level or 0, **backend_kwargs)
