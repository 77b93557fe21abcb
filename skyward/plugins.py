"""Plugin discovery: ``sky.plugins.<name>(...)`` resolves ``<name>`` in the ``skyward.plugins`` entry points.

An entry point names a factory; calling ``sky.plugins.<name>(**options)`` calls that factory and returns the
plugin object to pass to ``ComputePool(plugins=[...])``. Names match with dashes and underscores alike
(``sky.plugins.my_plugin`` finds ``my-plugin``), and an installed plugin wins over this module's own helpers
(a plugin named ``available`` is ``sky.plugins.available``; the helper stays reachable as
``skyward.plugins.installed``).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

ENTRY_POINT_GROUP = "skyward.plugins"


def _normal(name: str) -> str:
    return name.replace("-", "_").lower()


def _distribution(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def available() -> dict[str, EntryPoint]:
    """The installed plugins by name. Raises `ImportError` when two distributions register one name."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = _normal(ep.name)
        other = found.get(key)
        if other is not None and (other.value, _distribution(other)) != (ep.value, _distribution(ep)):
            raise ImportError(
                f"two installed packages register the skyward plugin {ep.name!r}: {_distribution(other)!r} "
                f"({other.value}) and {_distribution(ep)!r} ({ep.value}); uninstall one"
            )
        found[key] = ep
    return {ep.name: ep for ep in found.values()}


installed = available


def load(name: str) -> Callable[..., Any]:
    """The factory registered under `name`. Raises `AttributeError` listing the installed names if unknown."""
    found = {_normal(n): ep for n, ep in available().items()}
    ep = found.get(_normal(name))
    if ep is None:
        names = ", ".join(sorted(ep.name for ep in found.values())) or "none"
        raise AttributeError(
            f"no skyward plugin named {name!r} is installed (installed: {names}). A plugin is a package "
            f"with an entry point in the {ENTRY_POINT_GROUP!r} group."
        )
    return ep.load()  # type: ignore[no-any-return]


def entry_point_name(plugin: object) -> str | None:
    """The entry-point name of the installed package that `plugin`'s class comes from, if exactly one."""
    module = (
        getattr(plugin, "__name__", None) if isinstance(plugin, types.ModuleType) else type(plugin).__module__
    )
    package = (module or "").partition(".")[0]
    try:
        names = [ep.name for ep in available().values() if ep.module.partition(".")[0] == package]
    except ImportError:
        return None
    return names[0] if len(names) == 1 else None


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    return load(name)


def __dir__() -> list[str]:
    return sorted([*globals(), *available()])


_HELPERS = frozenset({"available", "load"})


class _PluginsModule(types.ModuleType):
    """This module, with installed plugins resolved before the helpers of the same name."""

    def __getattribute__(self, name: str) -> Any:
        if name in _HELPERS and any(_normal(ep.name) == name for ep in entry_points(group=ENTRY_POINT_GROUP)):
            return load(name)
        return super().__getattribute__(name)


sys.modules[__name__].__class__ = _PluginsModule
