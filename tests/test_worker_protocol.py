"""The node agent at the wire: only the pool's client can make it run (or unpickle) anything."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import skyward as sky
from skyward import reply as replies
from skyward.ioloop import shared_loop
from skyward.payload import encode_task
from skyward.transport import LinkError, NodeLink


class MakeDirOnUnpickle:
    """Unpickling this object creates a directory: proof that a payload was (or was not) unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


def counter(path: str) -> int:
    with open(path, "a") as f:
        f.write("x")
    return os.path.getsize(path)


@pytest.fixture
def node() -> Iterator[tuple[sky.ComputePool, object]]:
    with sky.ComputePool(nodes=1) as pool:
        started = pool._deployment.nodes[0]  # type: ignore[union-attr]
        yield pool, started


def _link(started: object, secret: bytes) -> NodeLink:
    link = NodeLink(started.info.name, started.port, started.dial, secret)  # type: ignore[attr-defined]
    shared_loop().run(link.connect()).result(timeout=20)
    return link


def _ask(coro: object) -> object:
    return shared_loop().run(coro).result(timeout=30)  # type: ignore[arg-type]


def test_a_peer_without_the_pools_certificate_cannot_connect(node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    marker = tmp_path / "unpickled"
    payload = encode_task(print, (MakeDirOnUnpickle(str(marker)),), {}).payload
    # Another pool's secret: a certificate the node's client CA never signed, and a CA the node's key is not from.
    intruder = NodeLink(started.info.name, started.port, started.dial, b"not the secret")
    with pytest.raises(LinkError, match="TLS"):
        shared_loop().run(intruder.connect(timeout=3)).result(timeout=20)
    assert not marker.exists()
    # The same payload from the pool's client is unpickled: the test above could fail.
    owner = _link(started, pool._secret)
    replies.result(_ask(owner.run("owner-1", payload)), "node")
    assert marker.is_dir()
    _ask(owner.close())


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\x01not lz4 at all",
        b"\x07unknown flag",
        b"\x00\x80\x05garbage pickle",
        os.urandom(4096),
    ],
)
def test_garbage_payloads_get_an_error_reply_and_the_node_keeps_serving(node, garbage: bytes) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    link = _link(started, pool._secret)
    reply = _ask(link.run("garbage", garbage))
    with pytest.raises(Exception) as caught:
        replies.result(reply, "node")
    assert not isinstance(caught.value, sky.NodeLost)

    @sky.compute
    def alive() -> int:
        return os.getpid()

    assert alive() >> pool == started.info.pid
    _ask(link.close())


def test_a_task_id_seen_twice_runs_once(node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool, started = node
    link = _link(started, pool._secret)
    count_file = str(tmp_path / "count")
    payload = encode_task(counter, (count_file,), {}).payload
    first = replies.result(_ask(link.run("same-id", payload)), "node")
    second = replies.result(_ask(link.run("same-id", payload)), "node")
    assert first == second == 1
    assert os.path.getsize(count_file) == 1
    assert replies.result(_ask(link.run("other-id", payload)), "node") == 2
    _ask(link.close())


def test_a_cancellation_that_overtakes_its_task_refuses_it_on_arrival(node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A task sent with uploads goes after them, so its cancellation can reach the node first: the node then
    # answers "cancelled" (1), and the task, when it comes, is refused without running.
    pool, started = node
    link = _link(started, pool._secret)
    count_file = str(tmp_path / "count")
    payload = encode_task(counter, (count_file,), {}).payload
    assert _ask(link.cancel(("early-id",))) == 1
    assert isinstance(replies.decode(_ask(link.run("early-id", payload))), replies.Cancelled)
    assert not os.path.exists(count_file)
    # A task that already ran is not cancelled (0), and a refused id is refused once only.
    assert replies.result(_ask(link.run("ran-id", payload)), "node") == 1
    assert _ask(link.cancel(("ran-id",))) == 0
    assert replies.result(_ask(link.run("early-id", payload)), "node") == 2
    _ask(link.close())
