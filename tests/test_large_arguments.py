"""Large arguments travel to each node once (content-addressed blobs), and past the message size limit."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import skyward as sky


def digest_of(value: object) -> tuple[str, int, bool]:
    data = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)  # type: ignore[arg-type]
    writeable = bool(value.flags.writeable) if isinstance(value, np.ndarray) else False
    return hashlib.sha256(data).hexdigest(), os.getpid(), writeable


remote_digest = sky.compute(digest_of)


@pytest.fixture(params=["thread", "process"])
def pool(request: pytest.FixtureRequest) -> sky.ComputePool:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2, executor=request.param)) as pool:
        yield pool


def test_a_large_array_reaches_each_node_once(pool: sky.ComputePool) -> None:
    X = np.random.default_rng(0).random((1000, 1000))  # 8 MB
    expected = hashlib.sha256(X.tobytes()).hexdigest()
    results = [f.result() for f in [remote_digest(X) > pool for _ in range(24)]]
    assert {r[0] for r in results} == {expected}
    assert {r[1] for r in results} - {os.getpid()} == {r[1] for r in results}
    stats = pool.stats
    assert stats.blobs_sent == 2, stats  # once per node, not 24 times
    assert 2 * X.nbytes <= stats.blob_bytes < 2.1 * X.nbytes
    assert stats.task_bytes < 24 * 10_000, "the array travelled inside the tasks"
    assert not any(r[2] for r in results), "arrays shared between tasks must be read-only on the node"


def test_an_array_changed_in_place_is_sent_again(pool: sky.ComputePool) -> None:
    X = np.zeros(300_000)  # 2.4 MB
    first = remote_digest(X) >> pool
    X[:] = 1.0
    second = remote_digest(X) >> pool
    assert first[0] != second[0]
    assert second[0] == hashlib.sha256(X.tobytes()).hexdigest()


def test_a_blob_larger_than_one_message_is_chunked() -> None:
    huge = os.urandom(140 * 1024 * 1024)  # over the 128 MiB message limit, incompressible
    with sky.ComputePool(nodes=1) as pool:
        digest, pid, _ = remote_digest(huge) >> pool
    assert digest == hashlib.sha256(huge).hexdigest() and pid != os.getpid()


def test_small_arguments_stay_inline(pool: sky.ComputePool) -> None:
    assert remote_digest(b"x" * 1000) >> pool
    assert pool.stats.blobs_sent == 0
