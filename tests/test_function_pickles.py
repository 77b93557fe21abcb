"""Functions pickled by value: the code is pickled once, everything that can change with every task."""

from __future__ import annotations

import textwrap
import types
from typing import Any

import numpy as np
import pytest

from skyward import function_pickles
from skyward.blobs import BlobIndex
from skyward.payload import decode_task, encode_task


def main_namespace(source: str) -> dict[str, Any]:
    """Run `source` as a script's ``__main__`` would: its functions travel by value."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(textwrap.dedent(source), "<script>", "exec"), namespace)  # noqa: S102 - the test's own code
    return namespace


def remote(fn: object, *args: object, index: BlobIndex | None = None) -> object:
    """Encode a call as the client does, decode it as a node does, and run it."""
    encoded = encode_task(fn, args, {}, index or BlobIndex())  # type: ignore[arg-type]
    task = decode_task(encoded.payload, lambda digest: pytest.fail(f"unexpected blob {digest.hex()}"))
    assert task.fn is not fn  # rebuilt from its code, not looked up by name
    return task.fn(*task.args, **task.kwargs)


def test_a_global_rebound_between_two_calls_travels_anew() -> None:
    ns = main_namespace("""
        SCALE = 2
        def scaled(x):
            return x * SCALE
    """)
    assert remote(ns["scaled"], 5) == 10
    ns["SCALE"] = 7
    assert remote(ns["scaled"], 5) == 35


def test_a_mutable_global_mutated_between_two_calls_travels_as_it_is() -> None:
    ns = main_namespace("""
        SEEN = []
        OPTIONS = {"k": 1}
        def look():
            return list(SEEN), dict(OPTIONS)
    """)
    assert remote(ns["look"]) == ([], {"k": 1})
    ns["SEEN"].append("x")
    ns["OPTIONS"]["k"] = 2
    assert remote(ns["look"]) == (["x"], {"k": 2})


def test_a_function_redefined_under_the_same_name_runs_its_new_body() -> None:
    ns = main_namespace("def version():\n    return 1\n")
    first = ns["version"]
    assert remote(first) == 1
    exec("def version():\n    return 2\n", ns)  # noqa: S102 - a script that redefines it (a notebook cell)
    assert remote(ns["version"]) == 2
    first.__code__ = ns["version"].__code__  # a new __code__ on the same function object
    assert remote(first) == 2


def test_a_closure_cell_set_between_two_calls_travels_anew() -> None:
    ns = main_namespace("""
        def make():
            k = 1
            def add(x):
                return x + k
            def set_k(value):
                nonlocal k
                k = value
            return add, set_k
        add, set_k = make()
    """)
    assert remote(ns["add"], 1) == 2
    ns["set_k"](10)
    assert remote(ns["add"], 1) == 11


def test_defaults_attributes_and_annotations_travel_as_they_are() -> None:
    ns = main_namespace("""
        def f(x, acc=[], *, tag="a") -> str:
            return f"{x}{acc}{tag}{getattr(f, 'extra', None)}"
    """)
    fn = ns["f"]
    assert remote(fn, 1) == "1[]aNone"
    fn.__defaults__[0].append(9)
    fn.__kwdefaults__["tag"] = "b"
    fn.extra = "attr"
    assert remote(fn, 1) == "1[9]battr"
    rebuilt = decode_task(encode_task(fn, (1,), {}, BlobIndex()).payload).fn
    assert rebuilt.__annotations__ == {"return": "str"} and rebuilt.__qualname__ == "f"
    assert rebuilt.__module__ == "__main__"


def test_functions_of_one_module_share_their_globals_on_the_node_within_a_task() -> None:
    ns = main_namespace("""
        COUNT = 0
        def bump():
            global COUNT
            COUNT += 1
        def bump_twice_and_read():
            bump()
            bump()
            return COUNT
    """)
    assert remote(ns["bump_twice_and_read"]) == 2
    assert ns["COUNT"] == 0  # the client's globals are not touched


def test_cycles_empty_cells_and_methods_with_super() -> None:
    ns = main_namespace("""
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        class Base:
            def hello(self):
                return "base"
        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        def greet():
            return Child().hello()
        def with_empty_cell():
            def inner():
                return later
            if False:
                later = 1
            return inner
    """)
    assert remote(ns["fact"], 5) == 120
    assert remote(ns["greet"]) == "child+base"
    inner = ns["with_empty_cell"]()
    rebuilt = decode_task(encode_task(inner, (), {}, BlobIndex()).payload).fn
    with pytest.raises(NameError):  # the cell is as empty on the node as here
        rebuilt()


def test_the_code_is_pickled_once_and_rebuilt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = main_namespace("""
        N = 1
        def task(x):
            return x + N
    """)
    pickled: list[object] = []
    real_dumps = function_pickles.cloudpickle.dumps
    monkeypatch.setattr(
        function_pickles.cloudpickle, "dumps", lambda obj, **kw: pickled.append(obj) or real_dumps(obj, **kw)
    )
    first = decode_task(encode_task(ns["task"], (1,), {}, BlobIndex()).payload).fn
    ns["N"] = 2
    second = decode_task(encode_task(ns["task"], (1,), {}, BlobIndex()).payload).fn
    assert pickled == [ns["task"].__code__]  # once, not per task
    assert second.__code__ is first.__code__  # rebuilt once on the node
    assert (first(1), second(1)) == (2, 3)


def test_the_nodes_cache_of_rebuilt_code_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(function_pickles, "_rebuilt", type(function_pickles._rebuilt)())
    monkeypatch.setattr(function_pickles, "_rebuilt_bytes", 0)
    monkeypatch.setattr(function_pickles, "_REBUILT_MAX_ENTRIES", 3)
    codes = [compile(f"x = {i}", "<c>", "exec") for i in range(5)]
    for code in codes:
        function_pickles.code_from_bytes(function_pickles.reduce_code(code)[1][0])
    assert len(function_pickles._rebuilt) == 3
    assert function_pickles._rebuilt_bytes == sum(len(data) for data in function_pickles._rebuilt)


def test_bytes_that_are_not_a_code_object_are_refused() -> None:
    with pytest.raises(Exception, match="expected a code object"):
        function_pickles.code_from_bytes(__import__("pickle").dumps(("not", "code")))


def test_large_globals_of_a_function_by_value_still_travel_as_blobs() -> None:
    ns = main_namespace("""
        def total():
            return int(X.sum()) + len(RAW)
    """)
    ns["X"] = np.ones(100_000)  # 800 KB: reaches the pickler's reducer_override
    ns["RAW"] = b"r" * 300_000  # bytes do not: the length of the pickle tells
    index = BlobIndex()
    encoded = encode_task(ns["total"], (), {}, index)
    assert len(encoded.blobs) == 2 and len(encoded.payload) < 10_000
    ns["RAW"] = b"r" * 1000
    ns["X"] = np.ones(10)
    assert encode_task(ns["total"], (), {}, index).blobs == {}


def test_functions_by_reference_are_not_touched() -> None:
    encoded = encode_task(types.SimpleNamespace, (), {"a": 1}, BlobIndex())
    assert decode_task(encoded.payload).fn is types.SimpleNamespace


def test_the_first_try_stops_at_a_large_array_instead_of_pickling_it() -> None:
    """Correct either way (the pickle's length tells), but a 50 MB X must not be pickled twice per submit."""
    import io

    from skyward.blobs import _FoundBlob, _InlinePickler

    with pytest.raises(_FoundBlob):
        _InlinePickler(io.BytesIO(), threshold=1024).dump(("x", np.ones(1024)))
    small = io.BytesIO()
    _InlinePickler(small, threshold=1024).dump(("x", np.ones(8)))
    assert small.tell() < 1024


def test_the_first_try_stops_before_copying_large_bytes() -> None:
    import io

    from skyward.blobs import _Bounded, _FoundBlob, _InlinePickler

    class Recording(_Bounded):
        copied = 0

        def write(self, data: object, /) -> int:
            written = super().write(data)
            Recording.copied += written
            return written

    with pytest.raises(_FoundBlob):
        _InlinePickler(Recording(1024), threshold=1024).dump(("x", b"y" * 1_000_000))
    assert Recording.copied < 1024  # stopped before the bytes were written into the pickle
    small = io.BytesIO()
    _InlinePickler(small, threshold=1024).dump(("x", b"y" * 100))
