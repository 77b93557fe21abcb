"""skyward's own behaviour, written as plugins through the same hooks as third-party ones (Datasette's pattern).

They are registered on every pool's plugin manager before the user's plugins, under the names below.
"""

from __future__ import annotations

from skyward.default_plugins.code_shipping import CodeShipping
from skyward.volumes.plugin import Volumes

#: (name, plugin) pairs, in the order their hooks run (before the user's plugins).
DEFAULT_PLUGINS: tuple[tuple[str, object], ...] = (
    ("skyward.code_shipping", CodeShipping()),
    ("skyward.volumes", Volumes()),
)

__all__ = ["DEFAULT_PLUGINS", "CodeShipping", "Volumes"]
