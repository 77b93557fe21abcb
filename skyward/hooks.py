"""The hook specifications of skyward plugins.

A plugin is any object (a module, a class instance) with methods marked ``@skyward.hookimpl`` whose names are
the hooks below. Pass plugins to a pool with ``plugins=[...]``; they run in that order. Ship one to others as a
package with an entry point in the ``skyward.plugins`` group, so users write ``sky.plugins.<name>()``::

    # pyproject.toml of the package
    [project.entry-points."skyward.plugins"]
    mytool = "mytool_skyward:plugin"     # a factory: plugin(**options) -> plugin object
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from skyward.image import Image
    from skyward.pool_handle import PoolHandle
    from skyward.providers.base import Provider
    from skyward.spec import ClusterSpec

PROJECT = "skyward"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def image_transform(image: Image, cluster: ClusterSpec) -> Image | None:
    """Return the node image this plugin needs, derived from `image`, or ``None`` to leave it unchanged.

    Called once per pool, before any node is provisioned. Implementations are folded in plugin order: each one
    receives the image the previous plugin returned, and the last result is what the provider installs (so a
    plugin's value wins over the user's ``Image`` for what it sets, and a later plugin's over an earlier one's).
    Never mutate `image` (it is frozen); anything but a `sky.Image` or ``None`` is refused naming the plugin.

    Each plugin's step is its own pluggy call: a ``@hookimpl(wrapper=True)`` of a plugin wraps that plugin's
    step, sees the image folded so far as `image`, and may replace the step's result.

    Example::

        @hookimpl
        def image_transform(self, image, cluster):
            return image.with_pip(f"joblib=={joblib.__version__}")
    """


@hookspec
def around_client(pool: PoolHandle, cluster: ClusterSpec) -> AbstractContextManager[object] | None:
    """Return a context manager that is active while the user's ``with`` block runs, or ``None``.

    Called once the pool is ready (every node connected). `pool` is a `skyward.pool_handle.PoolHandle`: the
    pool's public API (``submit``, ``broadcast``, ``preload``, ``nodes``, ``total_slots``, ...) and nothing of its
    internals. The returned managers are entered in plugin order and exited in reverse order before the nodes are
    torn down, also when the block raises or is interrupted. When the block raised and a manager's exit raises
    too, the block's exception propagates with the plugin's error attached as a note (and logged).

    Example::

        @hookimpl
        def around_client(self, pool, cluster):
            return joblib.parallel_config(backend="skyward")
    """


@hookspec
def task_preparer(provider: Provider, cluster: ClusterSpec) -> Callable[[], None] | None:
    """Return a function the pool calls on the client before it pickles each task, or ``None``.

    Called once per pool, at entry, before ``around_client``; the functions returned run in plugin order before
    every task (keep them cheap: they are on every task's path). skyward's own code shipping is such a plugin
    (`skyward.default_plugins.code_shipping`): it registers the user's newly imported modules to be pickled by
    value for nodes that do not share this machine's files.

    Example::

        @hookimpl
        def task_preparer(self, provider, cluster):
            return my_registry.freeze
    """
