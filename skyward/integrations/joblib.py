"""joblib in the older docs' terms: ``SkywardBackend``, ``sklearn_backend(pool)``, ``joblib_backend(pool)``.

    from joblib import Parallel, delayed, parallel_config, register_parallel_backend
    from skyward.integrations.joblib import SkywardBackend, sklearn_backend

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4)) as pool:
        with sklearn_backend(pool):                  # or, by hand:
            GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)
        # joblib calls the factory with keyword arguments (``nesting_level=``): accept and ignore them
        register_parallel_backend("skyward", lambda **_: SkywardBackend(pool))
        with parallel_config(backend="skyward"):
            Parallel(n_jobs=-1)(delayed(f)(x) for x in data)

The names are re-exported lazily from the plugin packages (skyward-joblib, skyward-sklearn), as in
``skyward.integrations``.
"""

from typing import Any

from skyward.integrations._plugins import LAZY_NAMES, lazy_attribute


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name)


__all__ = sorted(LAZY_NAMES)
