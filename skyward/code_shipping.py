"""Which of the client's modules travel to nodes by value.

cloudpickle pickles a function by reference (module + name) when its module can be imported, and by value (its
code) otherwise. Nodes on other machines have the installed packages (the image, skyward and its plugins) but not
the user's own source tree: a function from ``myproject/tasks.py`` pickled by reference would fail there with
``ModuleNotFoundError``. So before tasks are pickled for such nodes, every imported module that is neither part
of the standard library nor installed (site-packages) nor skyward's own is registered to travel by value.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from types import ModuleType

import cloudpickle

_lock = threading.Lock()
_modules_seen = 0
_decided: set[str] = set()
_installed_roots = tuple(
    os.path.realpath(path)
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (path := sysconfig.get_paths().get(key))
)


def is_local_source(name: str, module: ModuleType) -> bool:
    """True for a top-level module of the user's own source tree (not stdlib, not installed, not skyward)."""
    if name == "__main__" or name in sys.stdlib_module_names or name.startswith("skyward"):
        return False  # __main__ always travels by value already
    file = getattr(module, "__file__", None)
    if not file:
        return False  # built-in, frozen or namespace package: nothing to ship
    path = os.path.realpath(file)
    if any(part in ("site-packages", "dist-packages") for part in path.split(os.sep)):
        return False
    return not any(path.startswith(root + os.sep) for root in _installed_roots)


def ship_local_modules_by_value() -> None:
    """Register the user's modules imported so far to be pickled by value. Cheap when nothing new was imported."""
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return
    with _lock:
        for name, module in list(sys.modules.items()):
            if "." in name or name in _decided or not isinstance(module, ModuleType):
                continue
            _decided.add(name)
            if is_local_source(name, module):
                cloudpickle.register_pickle_by_value(module)  # covers its submodules too
        _modules_seen = len(sys.modules)
