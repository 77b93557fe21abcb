"""A large argument is identified by its whole content: changed in place between submits, it travels again.

Each case makes an object of 256 KiB or more (so it travels as a blob), runs a task that summarizes it on a
worker process, changes one element in place (away from any regular sample of its contents), and runs the task
again: the node must see the new content.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import skyward as sky


def summary(obj: Any) -> str:
    """A digest of what `obj` holds, computed the same way here and on a node."""
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        data = "\0".join(map(str, obj.tolist())).encode()
    elif isinstance(obj, np.ndarray):
        data = f"{obj.shape}".encode() + np.ascontiguousarray(obj).tobytes()
    elif isinstance(obj, pd.DataFrame | pd.Series):
        data = pd.util.hash_pandas_object(obj, index=True).to_numpy().tobytes()
        data += repr(obj.dtypes if isinstance(obj, pd.DataFrame) else obj.dtype).encode()
    elif isinstance(obj, memoryview):
        data = f"{obj.format}{obj.shape}".encode() + obj.tobytes()
    else:
        data = bytes(obj)
    return hashlib.sha256(data).hexdigest()


def summary_where(obj: Any) -> tuple[str, int]:
    return summary(obj), os.getpid()


remote_summary = sky.compute(summary_where)


def _frame() -> pd.DataFrame:
    rows = 40_000
    return pd.DataFrame(
        {
            "x": np.zeros(rows),
            "name": np.array([f"row{i}" for i in range(rows)], dtype=object),
            "kind": pd.Categorical(["a", "b"] * (rows // 2)),
        }
    )


def _set_frame(df: pd.DataFrame) -> None:
    df.loc[1, "x"] = 42.0
    df.loc[3, "name"] = "changed"
    df.loc[5, "kind"] = "b" if df.loc[5, "kind"] == "a" else "a"


def _set_strided(view: np.ndarray) -> None:
    view.base[3, 2] = 7.0  # written through the base: the view sees it at [3, 1]


# name -> (make, change in place). Every change touches one element only.
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "numpy contiguous": (lambda: np.zeros(1_000_000), lambda x: x.__setitem__(1, 42.0)),
    "numpy strided view": (lambda: np.zeros((2000, 400))[:, ::2], _set_strided),
    "numpy fortran order": (lambda: np.zeros((1000, 500), order="F"), lambda x: x.__setitem__((3, 7), 5.0)),
    "numpy datetime64": (
        lambda: np.zeros(100_000, dtype="datetime64[ns]"),
        lambda x: x.__setitem__(9, np.datetime64(1, "ns")),
    ),
    "bytearray": (lambda: bytearray(1 << 20), lambda b: b.__setitem__(5, 1)),
    "memoryview": (lambda: memoryview(bytearray(1 << 20)), lambda m: m.__setitem__(5, 1)),
    "memoryview of doubles": (
        lambda: memoryview(bytearray(1 << 20)).cast("d", (512, 256)),
        lambda m: m.__setitem__((3, 4), 2.5),
    ),
    "pandas dataframe": (_frame, _set_frame),
    "pandas series": (lambda: pd.Series(np.zeros(100_000)), lambda s: s.__setitem__(1, 42.0)),
    "pandas object series": (
        lambda: pd.Series(np.array([f"v{i}" for i in range(50_000)], dtype=object)),
        lambda s: s.__setitem__(1, "changed"),
    ),
    "pandas categorical series": (
        lambda: pd.Series(pd.Categorical(["a", "b"] * 200_000)),  # 400 KB of int8 codes
        lambda s: s.__setitem__(1, "a"),
    ),
}


@pytest.fixture(scope="module", params=["thread", "process"])
def pool(request: pytest.FixtureRequest) -> Iterator[sky.ComputePool]:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=1, executor=request.param)) as pool:
        yield pool


@pytest.mark.parametrize("case", CASES)
def test_a_change_in_place_travels_again(pool: sky.ComputePool, case: str) -> None:
    make, change = CASES[case]
    obj = make()
    before = summary(obj)
    sent = pool.stats.blobs_sent
    first, first_pid = remote_summary(obj) >> pool
    change(obj)
    after = summary(obj)
    assert after != before, "the case does not change the object"
    second, second_pid = remote_summary(obj) >> pool
    assert first == before
    assert second == after, "the node ran on the content of the first submit"
    assert os.getpid() not in (first_pid, second_pid)
    assert pool.stats.blobs_sent == sent + 2, "the object did not travel as a blob, once per content"


def test_bytes_of_equal_size_are_told_apart(pool: sky.ComputePool) -> None:
    # bytes cannot change in place: a new object that differs in one byte must not be taken for the old one.
    first = bytes(1 << 20)
    second = bytes(5) + b"\x01" + bytes((1 << 20) - 6)
    assert (remote_summary(first) >> pool)[0] == summary(first)
    digest, pid = remote_summary(second) >> pool
    assert digest == summary(second) and pid != os.getpid()


def test_a_task_runs_on_the_argument_as_it_was_submitted(pool: sky.ComputePool) -> None:
    # The upload is taken at submit: a change made while the task waits for its node is not in it.
    X = np.zeros(500_000)
    expected = summary(X)
    futures = [remote_summary(X) > pool for _ in range(3)]
    X[7] = 1.0
    assert {f.result()[0] for f in futures} == {expected}


def test_object_arrays_travel_inline(pool: sky.ComputePool) -> None:
    objects = np.array([f"s{i}" for i in range(50_000)], dtype=object)  # 400 KB of pointers
    sent = pool.stats.blobs_sent
    first = remote_summary(objects) >> pool
    objects[3] = "changed"
    second = remote_summary(objects) >> pool
    assert first[0] != second[0] and second[0] == summary(objects)
    assert pool.stats.blobs_sent == sent


def test_a_memoryview_of_an_unsupported_format_is_refused(pool: sky.ComputePool) -> None:
    view = memoryview(np.zeros(100_000, dtype=[("a", "<f8"), ("b", "<i4")]))
    with pytest.raises(TypeError, match="cannot be sent"):
        remote_summary(view) >> pool
