"""Plugin discovery: ``sky.plugins.<name>(...)`` resolves ``<name>`` in the ``skyward.plugins`` entry points.

An entry point names a factory; calling ``sky.plugins.<name>(**options)`` calls that factory and returns the
plugin object to pass to ``ComputePool(plugins=[...])``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from skyward import hooks

ENTRY_POINT_GROUP = "skyward.plugins"


def available() -> dict[str, EntryPoint]:
    """The installed plugins by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load(name: str) -> Callable[..., Any]:
    """The factory registered under `name`. Raises `AttributeError` listing the installed names if unknown."""
    found = available()
    if name not in found:
        installed = ", ".join(sorted(found)) or "none"
        raise AttributeError(
            f"no skyward plugin named {name!r} is installed (installed: {installed}). A plugin is a package "
            f"with an entry point in the {ENTRY_POINT_GROUP!r} group."
        )
    return found[name].load()


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    return load(name)


def __dir__() -> list[str]:
    return sorted([*globals(), *available()])


def manager(plugins: Sequence[object]) -> pluggy.PluginManager:
    """A plugin manager whose hooks call `plugins` in the given order.

    pluggy calls implementations last-registered first, so they are registered in reverse.
    """
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks)
    for plugin in reversed(plugins):
        pm.register(plugin)
    return pm


def fold(hook: pluggy.HookCaller, value: Any, field: str, **kwargs: Any) -> Any:
    """Call each implementation of `hook` in plugin order, passing the previous result as `field`."""
    for impl in reversed(hook.get_hookimpls()):
        args = {field: value, **kwargs}
        result = impl.function(*(args[name] for name in impl.argnames))
        if result is not None:
            value = result
    return value
