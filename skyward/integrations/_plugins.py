"""Lazy access to the plugin packages: skyward itself does not depend on them."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, distribution: str) -> ModuleType:
    """Import `module` of the plugin `distribution`, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # the plugin is there but something it imports is not: show that error
            raise
        raise ImportError(
            f"this needs the {distribution} plugin package: install it (`uv add {distribution}` or "
            f"`pip install {distribution}`)"
        ) from exc
