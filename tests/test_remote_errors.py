"""Exceptions and serialization failures cross back with their type and the remote traceback."""

from __future__ import annotations

import threading

import pytest

import skyward as sky


class TwoArgumentError(Exception):
    """Pickles fine, cannot be unpickled: `__init__` wants two arguments, `args` holds one."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)
        self.second = second


@sky.compute
def fail_with_value_error(text: str) -> None:
    def inner() -> None:
        raise ValueError(text)

    inner()


@sky.compute
def fail_with_unrebuildable_error() -> None:
    raise TwoArgumentError("half", "other half")


@sky.compute
def return_a_lock() -> object:
    return threading.Lock()


@sky.compute
def identity(value: object) -> object:
    return value


@sky.compute
def exit_the_process() -> None:
    raise SystemExit(3)


def test_remote_exception_keeps_type_message_and_traceback(pool2: sky.ComputePool) -> None:
    with pytest.raises(ValueError, match="boom 42") as caught:
        fail_with_value_error("boom 42") >> pool2
    remote_tb = caught.value.remote_traceback  # type: ignore[attr-defined]
    assert "in inner" in remote_tb and "in fail_with_value_error" in remote_tb
    notes = "\n".join(caught.value.__notes__)
    assert "Remote traceback (on sky-" in notes and "in inner" in notes
    # skyward's own frames are not part of the user's story
    assert "execute.py" not in remote_tb


def test_exception_type_that_cannot_be_rebuilt_becomes_remote_error(pool2: sky.ComputePool) -> None:
    with pytest.raises(sky.RemoteError) as caught:
        fail_with_unrebuildable_error() >> pool2
    error = caught.value
    assert error.type_name.endswith("TwoArgumentError")
    assert error.remote_message == "half"
    assert "fail_with_unrebuildable_error" in error.remote_traceback


def test_unpicklable_argument_raises_at_submit_naming_the_function(pool2: sky.ComputePool) -> None:
    with pytest.raises(TypeError, match="identity"):
        identity(threading.Lock()) > pool2


def test_unpicklable_result_is_an_error_naming_the_task(pool2: sky.ComputePool) -> None:
    with pytest.raises(TypeError, match=r"result of task sky-\w+-\d+ \(lock\) could not be pickled"):
        return_a_lock() >> pool2


def test_system_exit_in_a_task_does_not_kill_the_node(pool2: sky.ComputePool) -> None:
    with pytest.raises(SystemExit):
        exit_the_process() >> pool2
    assert identity(5) >> pool2 == 5
    assert pool2.total_slots == 4


def test_payload_over_the_message_limit_is_refused_clearly(pool2: sky.ComputePool) -> None:
    import os

    from skyward.blobs import BLOB_THRESHOLD
    from skyward.transport import MAX_MESSAGE_BYTES

    # Many pieces, each under the blob threshold, random so lz4 cannot shrink them: one message, too large.
    piece = BLOB_THRESHOLD - 1
    huge = tuple(os.urandom(piece) for _ in range(MAX_MESSAGE_BYTES // piece + 2))
    with pytest.raises(sky.PayloadTooLarge, match="MiB"):
        identity(huge) >> pool2
    assert identity(1) >> pool2 == 1
