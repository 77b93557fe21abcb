"""Keep ``warnings.filters`` portable while tasks are sent to nodes.

scikit-learn's ``Parallel`` pickles the current ``warnings.filters`` into every task. Unpickling a filter
imports its warning category on the node, so a category from a package the node lacks (pytest, a cloud SDK, a
monitoring library) makes every task fail before it starts. While a pool block is active only filters whose
category comes from the standard library stay; the exact previous list comes back on exit.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


def is_stdlib_category(category: object) -> bool:
    """True for builtin warning classes and those defined in standard-library modules."""
    module = getattr(category, "__module__", None)
    if not isinstance(module, str):
        return False
    top = module.partition(".")[0]
    return module == "builtins" or top in sys.stdlib_module_names


def _filters_mutated() -> None:
    # The C accelerator caches the filters; `warnings.filterwarnings` tells it about changes this way.
    notify = getattr(warnings, "_filters_mutated", None) or getattr(
        warnings, "_filters_mutated_lock_held", None
    )
    if notify is not None:
        notify()


@contextmanager
def stdlib_warning_filters() -> Iterator[list[tuple[object, ...]]]:
    """Keep only the filters whose category is from the standard library for the block.

    The list object ``warnings.filters`` is edited in place (scikit-learn holds a reference to it, not a copy),
    and on exit it holds exactly the entries it held before, the same objects in the same order: filters added
    inside the block are dropped with the rest. Yields the filters that were removed.

    Filters added inside the block (an SDK imported there) are not screened: add them before the block, or
    keep their categories importable on the nodes.
    """
    filters = warnings.filters
    saved = list(filters)
    removed = [entry for entry in saved if not is_stdlib_category(entry[2])]
    if removed:
        filters[:] = [entry for entry in saved if is_stdlib_category(entry[2])]
        _filters_mutated()
    try:
        yield removed
    finally:
        filters[:] = saved
        _filters_mutated()
