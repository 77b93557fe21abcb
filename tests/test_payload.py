"""Task encoding: the C-pickler fast path writes exactly what cloudpickle and the blob pickler would."""

from __future__ import annotations

import contextlib
import pickle
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import cloudpickle
import pytest

from skyward import wire
from skyward.blobs import BlobIndex, dumps_with_blobs
from skyward.payload import decode_task, encode_task


def add(a: int, b: int = 0) -> int:
    return a + b


@pytest.fixture(autouse=True)
def _this_module_by_reference() -> None:
    """An SSH pool earlier in the same run registers every test module to travel by value (code shipping is
    process-wide); these tests are about functions pickled by reference."""
    with contextlib.suppress(ValueError):  # not registered
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _slow(fn: object, args: tuple[object, ...], kwargs: dict[str, object], index: BlobIndex | None) -> bytes:
    call = (fn, args, kwargs)
    return wire.dumps(call) if index is None else dumps_with_blobs(call, index)[0]


@pytest.mark.parametrize("index", [None, BlobIndex()])
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1.5, "x", None, True, 2j), {}), ((3,), {"b": 4}), ((), {"a": "é" * 1000})],
)
def test_plain_calls_encode_to_cloudpickles_bytes(
    index: BlobIndex | None, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    for _ in range(2):  # the second time from the cache of functions pickled by reference
        encoded = encode_task(add, args, kwargs, index)
        assert encoded.payload == _slow(add, args, kwargs, index)
        assert encoded.blobs == {} and encoded.function == f"{__name__}.add"
        task = decode_task(encoded.payload)
        assert task.fn is add and task.args == args and task.kwargs == kwargs


def test_functions_that_travel_by_value_still_do() -> None:
    def local(x: int) -> int:
        return x + 1

    for fn in (local, lambda x: x):
        encoded = encode_task(fn, (1,), {}, BlobIndex())
        assert encoded.payload == _slow(fn, (1,), {}, BlobIndex())
        task = decode_task(encoded.payload)
        assert task.fn is not fn and task.fn(1) == fn(1)  # rebuilt from its code


def test_a_module_registered_by_value_after_a_first_call_travels_by_value(tmp_path: Path) -> None:
    source = tmp_path / "simperf_shipped.py"
    source.write_text(textwrap.dedent("""\
        def triple(x):
            return 3 * x
    """))  # fmt: skip
    sys.path.insert(0, str(tmp_path))
    try:
        import simperf_shipped  # type: ignore[import-not-found]

        module: ModuleType = simperf_shipped
        by_reference = encode_task(module.triple, (2,), {}, BlobIndex()).payload
        assert by_reference == wire.frame(pickle.dumps((module.triple, (2,), {}), protocol=5))
        cloudpickle.register_pickle_by_value(module)
        try:
            by_value = encode_task(module.triple, (2,), {}, BlobIndex()).payload
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        assert by_value != by_reference
        del sys.modules["simperf_shipped"]  # a node without the module: the code travels in the task
        task = decode_task(by_value)
        assert task.fn(*task.args) == 6
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("simperf_shipped", None)


def test_large_and_unplain_arguments_take_the_blob_pickler() -> None:
    index = BlobIndex(threshold=1024)
    encoded = encode_task(add, (b"x" * 4096,), {}, index)
    assert len(encoded.blobs) == 1  # the large bytes travel apart, by digest
    encoded = encode_task(add, ([1, 2],), {}, index)
    assert encoded.payload == _slow(add, ([1, 2],), {}, index)
