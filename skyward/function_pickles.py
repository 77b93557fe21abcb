"""Functions pickled by value: the code once per code object, everything that can change with every task.

A function of the user's ``__main__`` (or of a module that code shipping sends by value) travels as its code,
the globals it refers to, its defaults and its closure. Of these only the code object cannot change: it is
immutable, and a function redefined, or given a new ``__code__``, has a different one. So the code object's
pickle is cached here (by identity, for as long as the code object lives), and everything else is pickled with
every task as it is at that moment: a global rebound, a closure cell set, a default list mutated between two
calls all travel as they are at each call.

cloudpickle's own reducer pickles the code afresh each time and wraps the rest in two dicts keyed by attribute
name, about 160 objects for a function with a few globals, each of which the blob pickler inspects. This one
writes the same function in a fraction of that. It keeps cloudpickle's semantics: the functions of one module
in one task share one globals dict on the node, the submodules a function reaches through a global
(``os.path``) are imported there, and cycles (a function in its own globals, a method's ``__class__`` cell) are
resolved by setting the state after the function exists.

On the node the same bytes rebuild the same code object: rebuilt code is cached by its pickle (bounded), so a
node does not rebuild it for every task either. Sharing one code object between functions is what Python does
for every closure made by the same ``def``.
"""

from __future__ import annotations

import builtins
import pickle
import threading
import types
import weakref
from collections import OrderedDict
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cp

# --- client side ------------------------------------------------------------------------------------------

# id(code) -> (a weak reference to it, its pickle). The weak reference's callback drops the entry when the code
# object dies, before its id can be reused.
_pickled: dict[int, tuple[weakref.ref[types.CodeType], bytes]] = {}


class EmptyCell:
    """Stands for the content of a closure cell not yet assigned (pickled by reference, as a class)."""


def pickled_by_value(fn: types.FunctionType) -> bool:
    """True when cloudpickle would pickle `fn` by value (``__main__``, a lambda, a closure, a shipped module)."""
    return fn not in _REBUILDERS and not _cp._should_pickle_by_reference(fn)


def reduce_function(fn: types.FunctionType, globals_ref: dict[int, dict[str, Any]]) -> tuple[Any, ...]:
    """A pickler's reduction of a function by value; `globals_ref` is the pickler's (cloudpickle's) map of
    shared globals dicts, so that functions of one module share one globals dict once rebuilt."""
    code = fn.__code__
    module_globals = fn.__globals__
    base_globals = globals_ref.get(id(module_globals))
    if base_globals is None:  # what relative imports in the function need
        base_globals = globals_ref[id(module_globals)] = {
            k: module_globals[k]
            for k in ("__package__", "__name__", "__path__", "__file__")
            if k in module_globals
        }
    referenced = {k: module_globals[k] for k in _cp._extract_code_globals(code) if k in module_globals}
    closure = fn.__closure__
    cells = None if closure is None else tuple(_cell_content(cell) for cell in closure)
    dependencies = list(referenced.values()) if cells is None else [*referenced.values(), *cells]
    state = (
        fn.__qualname__,
        fn.__module__,
        fn.__doc__,
        fn.__defaults__,
        fn.__kwdefaults__,
        fn.__annotations__ or None,
        referenced,
        cells,
        _cp._find_imported_submodules(code, dependencies) or None,  # pickling them imports them on the node
        fn.__dict__ or None,
    )
    newargs = (code, base_globals, fn.__name__, None if closure is None else len(closure))
    return make_function, newargs, state, None, None, set_function_state


def _cell_content(cell: types.CellType) -> object:
    try:
        return cell.cell_contents
    except ValueError:
        return EmptyCell


def reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    """A pickler's reduction of a code object: its cached pickle, rebuilt by `code_from_bytes`."""
    key = id(code)
    entry = _pickled.get(key)
    if entry is not None and entry[0]() is code:
        return code_from_bytes, (entry[1],)
    data = cloudpickle.dumps(code, protocol=pickle.HIGHEST_PROTOCOL)

    def forget(ref: weakref.ref[types.CodeType], key: int = key) -> None:
        current = _pickled.get(key)
        if current is not None and current[0] is ref:
            del _pickled[key]

    _pickled[key] = (weakref.ref(code, forget), data)
    return code_from_bytes, (data,)


# --- node side --------------------------------------------------------------------------------------------

# A code object's pickle -> the code object, least recently used dropped past these bounds.
_REBUILT_MAX_ENTRIES = 4096
_REBUILT_MAX_BYTES = 64 << 20
_rebuilt: OrderedDict[bytes, types.CodeType] = OrderedDict()
_rebuilt_bytes = 0
_rebuilt_lock = threading.Lock()


def code_from_bytes(data: bytes) -> types.CodeType:
    """The code object pickled in `data` (by `reduce_code`), rebuilt once per distinct pickle while cached."""
    global _rebuilt_bytes
    with _rebuilt_lock:
        code = _rebuilt.get(data)
        if code is not None:
            _rebuilt.move_to_end(data)
            return code
    code = pickle.loads(data)
    if type(code) is not types.CodeType:
        raise pickle.UnpicklingError(f"expected a code object, got {type(code).__name__}")
    with _rebuilt_lock:
        if data not in _rebuilt:
            _rebuilt[data] = code
            _rebuilt_bytes += len(data)
            while len(_rebuilt) > _REBUILT_MAX_ENTRIES or _rebuilt_bytes > _REBUILT_MAX_BYTES:
                old, _ = _rebuilt.popitem(last=False)
                _rebuilt_bytes -= len(old)
    return code


def make_function(
    code: types.CodeType, base_globals: dict[str, Any], name: str, cells: int | None
) -> types.FunctionType:
    """The function's skeleton: empty closure cells, globals filled in by `set_function_state`."""
    closure = None if cells is None else tuple(types.CellType() for _ in range(cells))
    return types.FunctionType(code, base_globals, name, None, closure)


def set_function_state(fn: types.FunctionType, state: tuple[Any, ...]) -> None:
    """Give a rebuilt function its globals, closure, defaults and attributes, as they were at the call."""
    qualname, module, doc, defaults, kwdefaults, annotations, referenced, cells, _submodules, attrs = state
    fn.__globals__.update(referenced)
    fn.__globals__["__builtins__"] = builtins
    if cells is not None:
        for cell, value in zip(fn.__closure__ or (), cells, strict=True):
            if value is not EmptyCell:
                cell.cell_contents = value
    fn.__qualname__ = qualname
    fn.__module__ = module
    fn.__doc__ = doc
    fn.__defaults__ = defaults
    fn.__kwdefaults__ = kwdefaults
    if annotations is not None:
        fn.__annotations__ = annotations
    if attrs is not None:
        fn.__dict__.update(attrs)


# This module's functions that every function by value names in its pickle: skyward is installed on every node,
# so they always travel by reference; asking cloudpickle about them costs ~2 µs each per task.
_REBUILDERS = frozenset({make_function, set_function_state, code_from_bytes})
