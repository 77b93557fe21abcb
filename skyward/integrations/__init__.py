"""The pool classes and helpers of the older docs, as thin layers over `ComputePool` and the plugins.

    from skyward.integrations import JoblibPool, ScikitLearnPool

    with JoblibPool(nodes=2, concurrency=4) as pool:
        Parallel(n_jobs=-1)(delayed(f)(x) for x in data)

Importing this package needs only skyward; the plugin packages (skyward-joblib, skyward-sklearn) are imported
when a pool or backend is created.
"""

from skyward.integrations.joblib import joblib_backend, sklearn_backend
from skyward.integrations.pools import JoblibPool, ScikitLearnPool

__all__ = ["JoblibPool", "ScikitLearnPool", "joblib_backend", "sklearn_backend"]
