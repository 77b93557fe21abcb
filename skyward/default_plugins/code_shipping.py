"""The built-in plugin that sends the user's own modules by value to nodes that do not share this machine's files."""

from __future__ import annotations

from collections.abc import Callable

from skyward.code_shipping import ship_local_modules_by_value
from skyward.hooks import hookimpl
from skyward.providers.base import Provider
from skyward.spec import ClusterSpec


class CodeShipping:
    """Before each task is pickled, registers newly imported user modules to travel by value.

    Nodes of `sky.Local` see this machine's files, so nothing is needed there (see `skyward.code_shipping`).
    """

    @hookimpl
    def task_preparer(self, provider: Provider, cluster: ClusterSpec) -> Callable[[], None] | None:
        if provider.shares_client_files:
            return None
        return ship_local_modules_by_value
