"""Large arguments travel to each node once (content-addressed blobs), and past the message size limit.

Thread slots run on in-process nodes (`skyward.inprocess`: the real agent, blob store and uploads, no sockets);
process slots, and the message size limit, on `sky.Local`'s worker processes.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import skyward as sky
from skyward.inprocess import InProcess, current_node


def digest_of(value: object) -> tuple[str, int, bool, str | None]:
    data = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)  # type: ignore[arg-type]
    writeable = bool(value.flags.writeable) if isinstance(value, np.ndarray) else False
    return hashlib.sha256(data).hexdigest(), os.getpid(), writeable, current_node()


remote_digest = sky.compute(digest_of)


@pytest.fixture(params=["in-process threads", "process"])
def pool(request: pytest.FixtureRequest) -> sky.ComputePool:
    if request.param == "process":
        options: dict[str, object] = {"worker": sky.Worker(concurrency=2, executor="process")}
    else:
        options = {"worker": sky.Worker(concurrency=2), "provider": InProcess()}
    with sky.ComputePool(nodes=2, **options) as pool:  # type: ignore[arg-type]
        yield pool


def assert_ran_on_the_nodes(pool: sky.ComputePool, results: list[tuple[str, int, bool, str | None]]) -> None:
    if pool.provider.name == "in-process":  # the nodes' slot threads, in this process
        assert {r[3] for r in results} <= {n.name for n in pool.nodes} and None not in {r[3] for r in results}
    else:
        assert os.getpid() not in {r[1] for r in results}


def test_a_large_array_reaches_each_node_once(pool: sky.ComputePool) -> None:
    X = np.random.default_rng(0).random((1000, 1000))  # 8 MB
    expected = hashlib.sha256(X.tobytes()).hexdigest()
    results = [f.result() for f in [remote_digest(X) > pool for _ in range(24)]]
    assert {r[0] for r in results} == {expected}
    assert_ran_on_the_nodes(pool, results)
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
    assert_ran_on_the_nodes(pool, [first, second])
    assert first[0] != second[0]
    assert second[0] == hashlib.sha256(X.tobytes()).hexdigest()


def test_a_blob_larger_than_one_message_is_chunked() -> None:
    huge = os.urandom(140 * 1024 * 1024)  # over the 128 MiB message limit, incompressible
    with sky.ComputePool(nodes=1) as pool:
        digest, pid, _, _ = remote_digest(huge) >> pool
    assert digest == hashlib.sha256(huge).hexdigest() and pid != os.getpid()


def test_small_arguments_stay_inline(pool: sky.ComputePool) -> None:
    assert remote_digest(b"x" * 1000) >> pool
    assert pool.stats.blobs_sent == 0
