"""The plugin manager of one pool: plugins registered under readable names, checked, and called through pluggy.

Everything goes through pluggy's own call machinery, so ``wrapper=True`` hookimpls and pluggy's tracing
(``pm.trace``, ``pm.add_hookcall_monitoring``) see every call.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pluggy

from skyward import hooks
from skyward.default_plugins import DEFAULT_PLUGINS
from skyward.errors import SkywardError

logger = logging.getLogger("skyward.plugins")

HOOK_NAMES = tuple(
    name for name, fn in inspect.getmembers(hooks, inspect.isfunction) if hasattr(fn, f"{hooks.PROJECT}_spec")
)


class PluginError(SkywardError, TypeError):
    """A plugin is malformed (an unknown or unmarked hook) or one of its hooks returned something unusable."""


def plugin_label(plugin: object) -> str:
    """The name errors use: the entry-point name, else the class (or module) name."""
    from skyward.plugins import entry_point_name  # plugins is the resolver; it imports nothing from here

    named = entry_point_name(plugin)
    if named:
        return named
    if inspect.ismodule(plugin):
        return plugin.__name__
    return type(plugin).__name__


def _unique_names(plugins: Sequence[object]) -> list[str]:
    labels = [plugin_label(p) for p in plugins]
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        names.append(label if labels.count(label) == 1 else f"{label}#{seen[label]}")
    return names


def check_plugin(plugin: object) -> None:
    """Refuse objects that are not plugins, and hook-named methods that lack ``@sky.hookimpl``."""
    probe = pluggy.PluginManager(hooks.PROJECT)
    marked = [name for name in dir(plugin) if probe.parse_hookimpl_opts(plugin, name) is not None]
    label = plugin_label(plugin)
    unmarked = [name for name in HOOK_NAMES if name not in marked and callable(getattr(plugin, name, None))]
    if unmarked:
        raise PluginError(
            f"plugin {label!r} defines {unmarked[0]!r} without @sky.hookimpl, so it would never run: "
            f"mark it with @sky.hookimpl"
        )
    if not marked:
        hint = " (a factory? call it: sky.plugins.<name>())" if callable(plugin) else ""
        raise PluginError(f"{plugin!r} is not a skyward plugin: it implements no skyward hook{hint}")


def manager(
    plugins: Sequence[object], defaults: Sequence[tuple[str, object]] = DEFAULT_PLUGINS
) -> pluggy.PluginManager:
    """A plugin manager whose hooks call `defaults` then `plugins`, in that order, each under a readable name.

    pluggy calls implementations last-registered first, so they are registered in reverse. Unknown hooks
    (a misspelt ``image_transfrom``) are refused here, naming the plugin and the hook.
    """
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks)
    named = [*defaults, *zip(_unique_names(plugins), plugins, strict=True)]
    for name, plugin in reversed(named):
        check_plugin(plugin)
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r}: {exc}") from exc
    _check_pending(pm)
    return pm


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        hook = next(n for n in vars(pm.hook) if not n.startswith("_") and not getattr(pm.hook, n).has_spec())
        close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (skyward's hooks: {', '.join(HOOK_NAMES)})"
        name = pm.get_name(exc.plugin) or plugin_label(exc.plugin)
        raise PluginError(f"plugin {name!r} implements unknown hook {hook!r}{hint}") from None


def fold_image(pm: pluggy.PluginManager, image: Any, cluster: Any) -> Any:
    """Fold ``image_transform`` over the plugins in order: each gets the image the previous one returned.

    Each plugin's step is one pluggy call restricted to that plugin (`subset_hook_caller`), so its wrappers wrap
    its step and pluggy's tracing sees it. ``None`` means "unchanged"; anything else but a `sky.Image` is refused
    naming the plugin that returned it.
    """
    from skyward.image import Image  # image imports nothing of plugins; kept local to keep this module light

    order = _in_order(pm, "image_transform")
    for plugin in order:
        result = _step(pm, "image_transform", plugin, order)(image=image, cluster=cluster)
        if result is None:
            continue
        if not isinstance(result, Image):
            raise PluginError(
                f"plugin {pm.get_name(plugin)!r}: image_transform returned {type(result).__name__}, "
                f"not sky.Image (return None to leave the image unchanged)"
            )
        image = result
    return image


def _in_order(pm: pluggy.PluginManager, name: str) -> list[object]:
    """The plugins implementing hook `name`, in plugin order (they were registered in reverse)."""
    implementers = {id(impl.plugin) for impl in getattr(pm.hook, name).get_hookimpls()}
    return [plugin for _, plugin in reversed(pm.list_name_plugin()) if id(plugin) in implementers]


def _step(pm: pluggy.PluginManager, name: str, plugin: object, order: list[object]) -> pluggy.HookCaller:
    """The hook `name` restricted to `plugin`: one traced pluggy call that its own wrappers wrap."""
    return pm.subset_hook_caller(name, [p for p in order if p is not plugin])


def task_preparers(pm: pluggy.PluginManager, **kwargs: Any) -> list[Callable[[], None]]:
    """The functions the ``task_preparer`` hooks returned, in plugin order (skyward's default plugins first)."""
    order = _in_order(pm, "task_preparer")
    return [
        fn for plugin in order for fn in _step(pm, "task_preparer", plugin, order)(**kwargs) if fn is not None
    ]


def around_client(pm: pluggy.PluginManager, **kwargs: Any) -> Iterator[AbstractContextManager[object]]:
    """The ``around_client`` managers in plugin order, each guarded so that its exit error never hides the user's."""
    order = _in_order(pm, "around_client")
    for plugin in order:
        for manager in _step(pm, "around_client", plugin, order)(**kwargs):
            if manager is not None:
                yield _guarded(pm.get_name(plugin) or plugin_label(plugin), manager)


@contextmanager
def _guarded(name: str, manager: AbstractContextManager[object]) -> Iterator[object]:
    """Enter `manager`; when the block raised and the manager's exit raises too, keep the block's exception.

    The exit error is logged and attached to the user's exception as a note: the user's own error is the one to
    see first; the plugin's would otherwise replace it (left only as ``__context__``).
    """
    value = manager.__enter__()
    try:
        yield value
    except BaseException as exc:
        exit_error: BaseException | None = None
        try:
            suppress = manager.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as error:
            if error is exc:
                raise
            exit_error, suppress = error, False
        if exit_error is not None:
            logger.error("plugin %r failed on exit: %r", name, exit_error, exc_info=exit_error)
            exc.add_note(f"plugin {name!r} also failed on exit: {exit_error!r}")
        if not suppress:
            raise
    else:
        manager.__exit__(None, None, None)
