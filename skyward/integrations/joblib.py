"""joblib in the older docs' terms: `SkywardBackend`, `sklearn_backend(pool)`, `JoblibPool`, `ScikitLearnPool`.

    from joblib import Parallel, delayed, parallel_config, register_parallel_backend
    from skyward.integrations.joblib import SkywardBackend, sklearn_backend

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4)) as pool:
        with sklearn_backend(pool):                  # or, by hand:
            GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)
        register_parallel_backend("skyward", lambda: SkywardBackend(pool))
        with parallel_config(backend="skyward"):
            Parallel(n_jobs=-1)(delayed(f)(x) for x in data)

`SkywardBackend` comes from the skyward-joblib plugin package, imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from skyward.integrations._plugins import require
from skyward.integrations.pools import JoblibPool, ScikitLearnPool
from skyward.pool import ComputePool, current_pool

if TYPE_CHECKING:
    from skyward_joblib import SkywardBackend


@contextmanager
def sklearn_backend(pool: ComputePool | None = None) -> Iterator[SkywardBackend]:
    """Run joblib's ``Parallel`` and scikit-learn's ``n_jobs`` on `pool` (default: the active pool) in the block.

    The same activation as the joblib plugin's (see `skyward_joblib.skyward_backend`), for a pool created
    without it. Yields the active backend.
    """
    skyward_joblib = require("skyward_joblib", "skyward-joblib")
    with skyward_joblib.skyward_backend(pool if pool is not None else current_pool()) as backend:
        yield backend


#: The older docs used both names.
joblib_backend = sklearn_backend


def __getattr__(name: str) -> Any:
    if name == "SkywardBackend":
        return require("skyward_joblib", "skyward-joblib").SkywardBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["JoblibPool", "ScikitLearnPool", "SkywardBackend", "joblib_backend", "sklearn_backend"]
