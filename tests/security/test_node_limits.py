"""Issue 12, Medium: decompression is capped, and the node's reply cache is bounded by bytes, not by count."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import lz4.frame
import pytest

from skyward import reply as replies
from skyward import wire
from skyward.blobs import BlobStore
from skyward.payload import encode_task
from skyward.worker.agent import TaskRunner
from skyward.worker.slots import ThreadSlots

MB = 1 << 20


def test_an_lz4_bomb_is_refused_before_it_is_inflated() -> None:
    body = bytes(wire.MAX_DECOMPRESSED_BYTES + MB)  # 129 MiB of zeros: about 0.5 MiB compressed (250:1)
    bomb = b"\x01" + lz4.frame.compress(body, compression_level=0)
    del body
    assert len(bomb) < 2 * MB
    with pytest.raises(wire.WireError, match="more than 128 MiB"):
        wire.unframe(bomb)
    with pytest.raises(wire.WireError, match="more than 128 MiB"):
        replies.result(bytes([replies.STATUS_OK]) + bomb, "node")


def test_frames_up_to_the_cap_and_blobs_beyond_it_decompress() -> None:
    within = os.urandom(1000) * 1000
    assert wire.unframe(wire.frame(within), max_size=len(within)) == within
    with pytest.raises(wire.WireError):
        wire.unframe(wire.frame(within), max_size=len(within) - 1)
    assert wire.loads(wire.dumps(within), max_size=None) == within
    truncated = wire.frame(within)[:-100]
    with pytest.raises(wire.WireError):
        wire.unframe(truncated)


def test_a_result_over_the_cap_becomes_an_error_naming_the_task() -> None:
    reply = replies.ok(bytes(wire.MAX_DECOMPRESSED_BYTES + 1), "t-big")
    with pytest.raises(ValueError, match="t-big.*at most 128 MiB"):
        replies.result(reply, "node")


def count_and_return(path: str, size: int) -> bytes:
    with open(path, "a") as f:
        f.write("x")
    return os.urandom(size)


def _run(runner: TaskRunner, task_id: str, payload: bytes) -> bytes:
    async def go() -> bytes:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        runner.run(task_id, payload, (), done.set_result)
        return await asyncio.wait_for(done, 30)

    return asyncio.run(go())


def test_the_reply_cache_keeps_at_most_its_bytes_and_never_runs_an_evicted_task_twice(tmp_path: Path) -> None:
    store = BlobStore()
    slots = ThreadSlots(1, store)
    runner = TaskRunner(slots, store, cache_bytes=3 * MB)
    counter = str(tmp_path / "runs")
    payload = encode_task(count_and_return, (counter, MB), {}).payload
    try:
        first = _run(runner, "t-0", payload)
        assert _run(runner, "t-0", payload) == first  # cached: answered again without running
        for i in range(1, 6):
            _run(runner, f"t-{i}", payload)
            assert runner.cached_bytes <= 3 * MB
        assert os.path.getsize(counter) == 6
        assert runner.cached_bytes > 2 * MB  # it does cache: the bound is what limits it
        again = _run(runner, "t-0", payload)  # evicted by now
        with pytest.raises(RuntimeError, match="t-0 already ran on this node and its reply was evicted"):
            replies.result(again, "node")
        assert os.path.getsize(counter) == 6  # not run twice
        huge = encode_task(count_and_return, (counter, 4 * MB), {}).payload
        assert len(replies.result(_run(runner, "t-huge", huge), "node")) == 4 * MB  # delivered, not kept
        assert runner.cached_bytes <= 3 * MB
    finally:
        slots.shutdown()
