"""skyward-joblib: ``joblib.Parallel(n_jobs=-1)`` on every worker slot of a skyward pool.

    import skyward as sky
    from joblib import Parallel, delayed

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.joblib()]):
        results = Parallel(n_jobs=-1)(delayed(task)(i) for i in range(1000))   # 8 slots

The plugin pins the client's joblib version on the nodes (pickled batches are not portable across joblib
versions) and, for the pool's block, makes `SkywardBackend` joblib's active backend.
"""

__version__ = "0.1.0"  # the one place; plugins follow skyward's minor version

from skyward_joblib.activation import BACKEND_NAME, register_default, skyward_backend
from skyward_joblib.backend import NOT_CONFIGURED, SkywardBackend
from skyward_joblib.plugin import JoblibPlugin, exact_version, plugin
from skyward_joblib.pools import JoblibPool, joblib_backend
from skyward_joblib.warning_filters import (
    is_stdlib_category,
    portable_warning_filters,
    stdlib_warning_filters,
)

# `parallel_config(backend="skyward")` outside a pool block then says what is wrong instead of "Invalid backend".
register_default()

__all__ = [
    "BACKEND_NAME",
    "NOT_CONFIGURED",
    "JoblibPlugin",
    "JoblibPool",
    "SkywardBackend",
    "exact_version",
    "is_stdlib_category",
    "joblib_backend",
    "plugin",
    "portable_warning_filters",
    "register_default",
    "skyward_backend",
    "stdlib_warning_filters",
]
