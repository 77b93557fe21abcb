"""Turning the skyward backend on for a block: register it for one pool, make it joblib's active backend, keep
the warning filters portable, and put everything back on exit."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from joblib import parallel_config
from joblib.parallel import BACKENDS, register_parallel_backend

from skyward_joblib.backend import SkywardBackend
from skyward_joblib.warning_filters import stdlib_warning_filters

if TYPE_CHECKING:
    from skyward import ComputePool

#: The name joblib knows the backend by: ``parallel_config(backend="skyward")``.
BACKEND_NAME = "skyward"


def register_default() -> None:
    """Register ``"skyward"`` as a backend that runs on the innermost active pool.

    Outside every pool block it raises "skyward backend not configured: use it inside a ComputePool block"
    when a ``Parallel`` call uses it, instead of joblib's "Invalid backend". A pool block replaces it, for the
    block, with a factory bound to that pool.
    """
    if BACKEND_NAME not in BACKENDS:
        register_parallel_backend(BACKEND_NAME, SkywardBackend)


@contextmanager
def skyward_backend(pool: ComputePool, *, task_timeout: float | None = None) -> Iterator[SkywardBackend]:
    """Make ``joblib.Parallel`` (and scikit-learn's ``n_jobs``) run on `pool` inside the block.

    - ``"skyward"`` names a factory bound to this pool (``Parallel(backend="skyward")`` and
      ``parallel_config(backend="skyward")`` inside the block reach it), and is the active backend;
    - warning filters whose category is not from the standard library are set aside (see
      `skyward_joblib.warning_filters`);
    - on exit the previous ``"skyward"`` factory, the previous active backend and the exact previous
      ``warnings.filters`` come back, also when the block raises.

    Yields the active backend instance. Example::

        with sky.ComputePool(nodes=2) as pool, skyward_backend(pool):
            Parallel(n_jobs=-1)(delayed(f)(x) for x in range(100))
    """
    previous: Callable[..., object] | None = BACKENDS.get(BACKEND_NAME)
    register_parallel_backend(
        BACKEND_NAME, functools.partial(SkywardBackend, pool, task_timeout=task_timeout)
    )
    try:
        with stdlib_warning_filters(), parallel_config(backend=BACKEND_NAME) as config:
            yield config["backend"]
    finally:
        if previous is None:
            BACKENDS.pop(BACKEND_NAME, None)
        else:
            BACKENDS[BACKEND_NAME] = previous
