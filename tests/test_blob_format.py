"""The upload format of blobs: arrays' memory out of band, rebuilt on the node without a copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skyward import wire
from skyward.blob_format import deserialize
from skyward.blobs import BlobIndex, rebuild


def upload(obj: object) -> bytearray:
    """What a node holds once the chunks of `obj`'s upload are assembled."""
    index = BlobIndex()
    return bytearray(index.serialized(index.digest(obj), obj))


def test_an_incompressible_array_is_rebuilt_over_the_uploaded_bytes() -> None:
    x = np.random.default_rng(0).standard_normal((500, 200))
    data = upload(x)
    assert data[0] == 0x02 and len(data) < x.nbytes + 1024  # its memory once, after a small header
    rebuilt = rebuild(data)
    assert np.array_equal(rebuilt, x) and not rebuilt.flags.writeable  # type: ignore[union-attr]
    assert np.shares_memory(rebuilt, np.frombuffer(data, np.uint8))  # no copy on the node


@pytest.mark.parametrize(
    "obj",
    [
        np.asfortranarray(np.random.default_rng(1).standard_normal((300, 300))),
        pd.DataFrame({"a": np.random.default_rng(2).standard_normal(50_000), "b": ["x"] * 50_000}),
    ],
    ids=["fortran", "pandas"],
)
def test_layouts_and_frames_round_trip(obj: object) -> None:
    rebuilt = rebuild(upload(obj))
    if isinstance(obj, pd.DataFrame):
        pd.testing.assert_frame_equal(rebuilt, obj)  # type: ignore[arg-type]
    else:
        assert np.array_equal(rebuilt, obj) and rebuilt.flags.f_contiguous  # type: ignore[union-attr, arg-type]


def test_compressible_data_and_plain_bytes_travel_as_lz4_frames() -> None:
    zeros = np.zeros(200_000)
    data = upload(zeros)
    assert data[0] == 0x01 and len(data) < zeros.nbytes / 10
    assert np.array_equal(rebuild(data), zeros)  # type: ignore[arg-type]
    assert rebuild(upload(b"b" * 300_000)) == b"b" * 300_000


def test_the_snapshot_is_taken_at_serialization() -> None:
    x = np.random.default_rng(3).standard_normal(100_000)
    data = upload(x)
    before = x.copy()
    x[:] = 0  # written in place after the submit: the upload holds the argument as it was
    assert np.array_equal(rebuild(data), before)  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [5, 30, -1])
def test_truncated_uploads_are_refused(cut: int) -> None:
    data = upload(np.random.default_rng(4).standard_normal(100_000))
    with pytest.raises(wire.WireError):
        deserialize(data[:cut])
