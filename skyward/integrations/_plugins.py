"""Lazy re-exports of the plugin packages' older-docs names: the core imports no plugin package.

The names live in the plugin packages (``skyward_joblib.pools``, ``skyward_sklearn.pools``); the modules of
``skyward.integrations`` resolve them on first access through a module ``__getattr__``, so importing skyward
never imports a plugin, and a missing plugin is a clear error that says what to install.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> (module that defines it, distribution that ships the module). Strings, not imports.
LAZY_NAMES: dict[str, tuple[str, str]] = {
    "JoblibPool": ("skyward_joblib.pools", "skyward-joblib"),
    "joblib_backend": ("skyward_joblib.pools", "skyward-joblib"),
    "SkywardBackend": ("skyward_joblib.backend", "skyward-joblib"),
    "ScikitLearnPool": ("skyward_sklearn.pools", "skyward-sklearn"),
    "sklearn_backend": ("skyward_sklearn.pools", "skyward-sklearn"),
}


class PluginNotInstalled(ImportError):
    """A name of ``skyward.integrations`` whose plugin package is not installed."""


def lazy_attribute(module_name: str, name: str) -> Any:
    """The re-exported `name` for `module_name`'s ``__getattr__``; ``AttributeError`` for any other name."""
    if name not in LAZY_NAMES:
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    module, distribution = LAZY_NAMES[name]
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the plugin is there but something it imports is not: show that error
        raise PluginNotInstalled(
            f"{name} is in the {distribution} package: install it (`uv add {distribution}` or "
            f"`pip install {distribution}`; see the plugin pages of the docs)"
        ) from exc
