"""What `ComputePool.preload` sends: module references that import themselves where they are unpickled.

A module of its own (not `skyward.pool`) so that unpickling the task on a node imports nothing more of skyward.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ImportedOnLoad:
    """Pickles as ``importlib.import_module(name)``: the module is imported where this is unpickled."""

    name: str

    def __reduce__(self) -> tuple[Any, ...]:
        return importlib.import_module, (self.name,)


def loaded(*modules: object) -> int:
    """The task of `ComputePool.preload`: its arguments were imported when it was unpickled; counts them."""
    return len(modules)
