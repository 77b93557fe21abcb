"""Malformed or truncated bytes never crash the decoders or the agent: they become error replies."""

from __future__ import annotations

import itertools
import os
import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skyward as sky
from skyward import reply as replies
from skyward import wire
from skyward.blobs import DIGEST_SIZE, BlobStore
from skyward.ioloop import shared_loop
from skyward.payload import encode_task
from skyward.worker.agent import TaskRunner
from skyward.worker.slots import ThreadSlots

# Errors the decoders may raise for garbage; anything else (or a crash) is a bug.
DECODE_ERRORS = (
    wire.WireError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    ImportError,
    KeyError,
    IndexError,
    MemoryError,
    OverflowError,
    UnicodeDecodeError,
    RecursionError,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_unframe_rejects_or_returns(data: bytes) -> None:
    try:
        wire.unframe(data)
    except wire.WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_decode_reply_raises_only_known_errors(data: bytes) -> None:
    try:
        replies.result(data, "node")
    except DECODE_ERRORS:
        pass
    except BaseException as exc:  # noqa: BLE001  (a decoded remote exception is a legitimate outcome too)
        assert not isinstance(exc, (KeyboardInterrupt, SystemExit)) or data[:1] == b"\x01"


def _valid_task() -> bytes:
    return encode_task(sum, ((1, 2, 3),), {}).payload


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=200), flip=st.integers(min_value=0, max_value=200))
def test_truncated_and_corrupted_tasks_get_error_replies_in_process(cut: int, flip: int) -> None:
    """TaskRunner + thread slots, without transport: each message is answered with a decodable reply."""
    payload = bytearray(_valid_task())
    payload = payload[: max(0, len(payload) - cut)]
    if payload and flip < len(payload):
        payload[flip] ^= 0xFF
    runner_reply = _run_in_runner(bytes(payload))
    assert runner_reply[:1] in (b"\x00", b"\x01"), runner_reply[:1]
    if cut == 0 and flip >= len(payload):  # untouched: it still runs
        assert replies.result(runner_reply, "node") == 6


def _run_in_runner(payload: bytes) -> bytes:
    import asyncio

    store = BlobStore()
    slots = ThreadSlots(1, store)
    runner = TaskRunner(slots, store)
    replies: list[bytes] = []

    async def go() -> None:
        done = asyncio.Event()

        def reply(data: bytes) -> None:
            replies.append(data)
            done.set()

        runner.run("t-1", payload, (), reply)
        await asyncio.wait_for(done.wait(), 10)

    try:
        asyncio.run(go())
    finally:
        slots.shutdown()
    return replies[0]


_ids = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    task_id=st.text(max_size=40),
    payload=st.binary(max_size=1024),
    blobs=st.lists(st.binary(min_size=DIGEST_SIZE, max_size=DIGEST_SIZE), max_size=3),
)
def test_the_agent_answers_garbage_over_the_wire_and_keeps_serving(
    live_node, task_id, payload, blobs
) -> None:  # type: ignore[no-untyped-def]
    _pool, link = live_node
    unique = f"fuzz-{next(_ids)}-{task_id}"  # a repeated id would (rightly) be answered from the result cache
    reply = shared_loop().run(link.run(unique, payload, tuple(blobs))).result(timeout=30)
    assert isinstance(reply, bytes) and reply[:1] in (b"\x00", b"\x01", b"\x02", b"\x03")
    if blobs:
        assert replies.decode(reply) == replies.MissingBlobs(
            tuple(blobs)
        )  # checked before the payload is looked at


def test_the_fuzzed_agent_still_runs_real_work(live_node) -> None:  # type: ignore[no-untyped-def]
    pool, _ = live_node

    @sky.compute
    def pid() -> int:
        return os.getpid()

    assert pid() >> pool == pool.nodes[0].pid
