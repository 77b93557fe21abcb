"""skyward-sklearn: scikit-learn's ``n_jobs`` (GridSearchCV, cross_val_score, ...) on every slot of a pool.

    import skyward as sky
    from sklearn.model_selection import GridSearchCV

    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=4), plugins=[sky.plugins.sklearn()]):
        GridSearchCV(SVC(), grid, n_jobs=-1).fit(X, y)      # the fits run on the nodes

scikit-learn parallelizes through joblib, so this plugin is the joblib plugin (same backend, same warning-filter
handling) plus scikit-learn on the nodes. Both packages are pinned to the client's versions by default: pickled
estimators and joblib batches are not portable across versions.
"""

__version__ = "0.1.0"  # the one place; plugins follow skyward's minor version

from skyward_sklearn.plugin import SklearnPlugin, plugin
from skyward_sklearn.pools import ScikitLearnPool, sklearn_backend

__all__ = ["ScikitLearnPool", "SklearnPlugin", "plugin", "sklearn_backend"]
