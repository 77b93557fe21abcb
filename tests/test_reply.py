"""The reply codec: every kind round-trips through its bytes, and bad bytes are refused before unpickling."""

from __future__ import annotations

import pickle

import cloudpickle
import lz4.frame
import pytest

from skyward import reply as replies
from skyward import wire


def test_ok_round_trips_and_is_decoded_lazily() -> None:
    decoded = replies.decode(replies.ok({"a": [1, 2]}, "t-1"))
    assert isinstance(decoded, replies.Ok)
    assert decoded.value() == {"a": [1, 2]}


@pytest.mark.parametrize("value", [7, 2**100, -1.5, True, None, "é" * 3, b"\x00" * 5000, "x" * 10_000])
def test_plain_values_are_the_bytes_cloudpickle_writes(value: object) -> None:
    body = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert replies.ok(value, "t-1") == bytes([replies.STATUS_OK]) + wire.frame(body)
    decoded = replies.decode(replies.ok(value, "t-1"))
    assert isinstance(decoded, replies.Ok) and decoded.value() == value


def test_error_round_trips_with_type_and_remote_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        data = replies.error(exc)
    decoded = replies.decode(data)
    assert isinstance(decoded, replies.Error)
    exc = decoded.exception("node-3")
    assert isinstance(exc, KeyError) and exc.args == ("missing",)
    assert "Remote traceback (on node-3)" in exc.__notes__[0] and "raise KeyError" in exc.remote_traceback
    with pytest.raises(KeyError, match="missing"):
        replies.result(data, "node-3")


def test_an_unpicklable_result_is_an_error_naming_the_task() -> None:
    gen = (i for i in range(1))
    with pytest.raises(TypeError, match="task t-9"):
        replies.result(replies.ok(gen, "t-9"), "n")


def test_cancelled_missing_and_crashed_round_trip() -> None:
    assert replies.decode(replies.cancelled()) == replies.Cancelled()
    digests = (b"a" * 16, b"b" * 16)
    assert replies.decode(replies.missing(digests)) == replies.MissingBlobs(digests)
    assert replies.decode(replies.crashed(None, 9, ("boom",))) == replies.Crashed(None, 9, ("boom",))
    assert replies.decode(replies.crashed(3, None, ())) == replies.Crashed(3, None, ())
    with pytest.raises(wire.WireError, match="Cancelled reply has no value"):
        replies.result(replies.cancelled(), "n")


@pytest.mark.parametrize("data", [b"", bytes([5]), bytes([255]) + wire.dumps(1)], ids=["empty", "5", "255"])
def test_an_unknown_status_is_refused(data: bytes) -> None:
    with pytest.raises(wire.WireError, match="empty reply|unknown reply status"):
        replies.decode(data)


def test_malformed_bodies_are_refused_as_wire_errors() -> None:
    with pytest.raises(wire.WireError, match="not whole digests"):
        replies.decode(bytes([replies.STATUS_MISSING_BLOBS]) + b"x" * 17)
    with pytest.raises(wire.WireError, match="malformed crash reply"):
        replies.decode(bytes([replies.STATUS_CRASHED]) + wire.dumps("not a tuple"))


def test_an_oversize_frame_is_refused_before_it_is_unpickled() -> None:
    # 129 MiB of zeros compress to about half a MiB: the cap stops the decompression, nothing is unpickled
    bomb = b"\x01" + lz4.frame.compress(bytes(wire.MAX_DECOMPRESSED_BYTES + 2**20), compression_level=0)
    decoded = replies.decode(bytes([replies.STATUS_OK]) + bomb)
    with pytest.raises(wire.WireError, match="more than 128 MiB"):
        decoded.value()  # type: ignore[union-attr]
    with pytest.raises(wire.WireError, match="more than 128 MiB"):
        replies.decode(bytes([replies.STATUS_CRASHED]) + bomb)
