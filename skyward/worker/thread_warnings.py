"""Per-thread ``warnings.filters`` in a node whose slots are threads.

Python keeps one ``warnings.filters`` list per process, and ``warnings.catch_warnings`` swaps the module's
``filters`` for a copy on entry and puts back what it found on exit: the documentation calls it not thread-safe.
scikit-learn runs every task inside ``catch_warnings`` with the filters of the client that sent it
(``sklearn.utils.parallel._FuncWrapper``). With several thread slots, one task's exit puts back the list another
task is still running under, and warnings the user silenced on the client leak out of the other task (0-2 per
``cross_val_score`` measured with four slots).

`install` makes ``filters`` an attribute of each thread: a thread sees the process's list until it assigns a list
of its own (``catch_warnings`` does on entry), and shares the process's list again when it assigns that list back
(``catch_warnings`` does on exit). Plain ``filterwarnings`` outside ``catch_warnings`` still changes the list a
thread sees, the process's one for most threads. Python 3.14 offers the same through a context variable
(``-X context_aware_warnings``).

Why this holds on CPython 3.12 and 3.13 (checked against their sources, and by `install`'s own check):

- the C accelerator reads the filters at each warning as an attribute of ``sys.modules["warnings"]``
  (``_warnings.c``: ``get_filters`` -> ``get_warnings_attr(interp, &_Py_ID(filters), 0)`` ->
  ``PyObject_GetAttr``): a property on the module's class answers it;
- ``catch_warnings`` reads and assigns ``self._module.filters``: the same property;
- ``filterwarnings``, ``simplefilter`` and ``resetwarnings`` change the global ``filters`` of ``warnings.py``, found
  in the module's ``__dict__`` (the property does not see these): that entry becomes `CurrentThreadFilters`,
  which forwards every list operation to the list the current thread sees.
"""

from __future__ import annotations

import sys
import threading
import types
import warnings
from collections.abc import Iterator, MutableSequence
from typing import Any

_own = threading.local()
_process_filters: list[Any] | None = None


def _current() -> list[Any]:
    """The filter list the calling thread sees."""
    own = getattr(_own, "filters", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    assert _process_filters is not None
    return _process_filters


class ThreadFiltersModule(types.ModuleType):
    """The ``warnings`` module's class after `install`: ``filters`` is per thread."""

    @property
    def filters(self) -> list[Any]:
        return _current()

    @filters.setter
    def filters(self, value: list[Any]) -> None:
        if value is _process_filters:
            _own.__dict__.pop("filters", None)  # back to the process's list, as before catch_warnings
        else:
            _own.filters = value


class CurrentThreadFilters(MutableSequence[Any]):
    """The ``filters`` global that ``warnings.py``'s own functions change: the calling thread's list."""

    def __getitem__(self, index: Any) -> Any:
        return _current()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        _current()[index] = value

    def __delitem__(self, index: Any) -> None:
        del _current()[index]

    def __len__(self) -> int:
        return len(_current())

    def __iter__(self) -> Iterator[Any]:
        return iter(_current())

    def __contains__(self, item: object) -> bool:
        return item in _current()

    def insert(self, index: int, value: Any) -> None:
        _current().insert(index, value)

    def remove(self, value: Any) -> None:
        _current().remove(value)

    def __eq__(self, other: object) -> bool:
        return _current() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(_current())


def install() -> bool:
    """Make ``warnings.filters`` per thread in this process (idempotent). False where it does not apply.

    Only for CPython 3.12 and 3.13, whose ``warnings`` is the one described in this module's docstring; 3.14
    changed both (and offers ``-X context_aware_warnings`` instead).
    """
    global _process_filters
    module = sys.modules["warnings"]
    if isinstance(module, ThreadFiltersModule):
        return True
    if sys.implementation.name != "cpython" or not (3, 12) <= sys.version_info[:2] <= (3, 13):
        return False
    _process_filters = module.__dict__["filters"]
    module.__class__ = ThreadFiltersModule
    module.__dict__["filters"] = CurrentThreadFilters()
    warnings._filters_mutated()  # type: ignore[attr-defined]
    return True
