"""The pool classes and helpers of the older docs, re-exported lazily from the plugin packages.

    from skyward.integrations import JoblibPool, ScikitLearnPool

    with JoblibPool(nodes=2, concurrency=4) as pool:
        Parallel(n_jobs=-1)(delayed(f)(x) for x in data)

The names live in the plugin packages: ``JoblibPool`` and ``joblib_backend`` in skyward-joblib
(``skyward_joblib.pools``), ``ScikitLearnPool`` and ``sklearn_backend`` in skyward-sklearn
(``skyward_sklearn.pools``). Importing this package imports neither; a name is imported on first access, and a
missing plugin package raises ``ImportError`` saying which one to install.
"""

from typing import Any

from skyward.integrations._plugins import LAZY_NAMES, lazy_attribute


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name)


__all__ = sorted(LAZY_NAMES)
