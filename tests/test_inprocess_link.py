"""The in-process link: the real agent (`TaskRunner` + thread slots) reached without sockets, same bytes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import threading
import time
from collections.abc import Iterator

import cloudpickle
import numpy as np
import pytest

from skyward import reply as replies
from skyward.blobs import BlobIndex
from skyward.image import Image
from skyward.inprocess import InProcess, InProcessDeployment, InProcessLink, current_node
from skyward.inprocess.host import DelayLine
from skyward.link import Link, LinkError
from skyward.payload import encode_task
from skyward.spec import ClusterSpec, Resources, Worker
from skyward.transport import LinkError as TransportLinkError
from skyward.transport import NodeLink


def _cluster(nodes: int = 1, concurrency: int = 1) -> ClusterSpec:
    return ClusterSpec("sky-test", nodes, Worker(concurrency=concurrency), "in-process", Resources())


@pytest.fixture
def deployment() -> Iterator[InProcessDeployment]:
    deployment = InProcess().launch(_cluster(), Image(), b"", 60.0)
    yield deployment
    deployment.close()


def where(x: int) -> tuple[int, str | None, str]:
    return x * x, current_node(), threading.current_thread().name


# In-process nodes share this module with the test: a task can wait on an event the test sets.
_EVENTS: dict[str, threading.Event] = {}


@pytest.fixture(autouse=True)
def _tasks_by_reference() -> None:
    """An SSH pool earlier in the same run registers every test module to travel by value (code shipping is
    process-wide); `hold` must reach the nodes by reference, as the real `_EVENTS` can't be pickled."""
    with contextlib.suppress(ValueError):  # not registered
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def hold(key: str, x: int) -> int:
    _EVENTS[key].wait(10)
    return x


@pytest.fixture
def release(request: pytest.FixtureRequest) -> Iterator[tuple[str, threading.Event]]:
    key, event = request.node.name, threading.Event()
    _EVENTS[key] = event
    yield key, event
    event.set()
    del _EVENTS[key]


def array_sum(a: np.ndarray) -> float:
    return float(a.sum())


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_run_executes_in_the_nodes_slot_and_answers_reply_bytes(deployment: InProcessDeployment) -> None:
    async def go() -> replies.Reply:
        link = deployment.link(0, b"")
        await link.connect()
        reply = replies.decode(await link.run("t-1", encode_task(where, (7,), {}).payload))
        await link.close()
        return reply

    reply = _run(go())
    assert isinstance(reply, replies.Ok)
    value, node, thread = reply.value()
    name = deployment.nodes[0].info.name
    assert value == 49 and node == name
    assert thread.startswith(f"{name}/slot") and thread != threading.current_thread().name


def test_a_repeated_task_id_is_answered_from_the_reply_cache(deployment: InProcessDeployment) -> None:
    async def go() -> tuple[bytes, bytes]:
        link = deployment.link(0, b"")
        await link.connect()
        payload = encode_task(where, (3,), {}).payload
        return await link.run("t-1", payload), await link.run("t-1", encode_task(where, (4,), {}).payload)

    first, second = _run(go())
    assert first == second  # the agent's at-most-once rule, through the link


def test_blobs_are_uploaded_then_referred_to(deployment: InProcessDeployment) -> None:
    X = np.arange(100_000, dtype=np.float64)  # 800 KB: a blob
    encoded = encode_task(array_sum, (X,), {}, BlobIndex())
    ((digest, data),) = encoded.blobs.items()

    async def go() -> tuple[replies.Reply, replies.Reply]:
        link = deployment.link(0, b"")
        await link.connect()
        before = replies.decode(await link.run("t-1", encoded.payload, (digest,)))
        await link.put_blob(digest, data)
        after = replies.decode(await link.run("t-2", encoded.payload, (digest,)))
        return before, after

    before, after = _run(go())
    assert isinstance(before, replies.MissingBlobs) and before.digests == (digest,)
    assert isinstance(after, replies.Ok) and after.value() == float(X.sum())


def test_cancel_withdraws_a_queued_task(
    deployment: InProcessDeployment, release: tuple[str, threading.Event]
) -> None:
    key, event = release

    async def go() -> tuple[int, replies.Reply, replies.Reply]:
        link = deployment.link(0, b"")
        await link.connect()
        running = asyncio.ensure_future(link.run("t-1", encode_task(hold, (key, 1), {}).payload))
        queued = asyncio.ensure_future(link.run("t-2", encode_task(hold, (key, 2), {}).payload))
        await asyncio.sleep(0.05)  # both reached the node; its one slot holds t-1
        cancelled = await link.cancel(("t-2",), stop_running=False)
        event.set()
        return cancelled, replies.decode(await running), replies.decode(await queued)

    cancelled, running, queued = _run(go())
    assert cancelled == 1
    assert isinstance(queued, replies.Cancelled)
    assert isinstance(running, replies.Ok) and running.value() == 1


def test_heartbeat_and_a_lost_node(
    deployment: InProcessDeployment, release: tuple[str, threading.Event]
) -> None:
    key, _ = release

    async def go() -> tuple[bool, BaseException, BaseException]:
        link = deployment.link(0, b"")
        await link.connect()
        beat = await link.heartbeat()
        in_flight = asyncio.ensure_future(link.run("t-1", encode_task(hold, (key, 1), {}).payload))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(deployment.lose, 0)
        with pytest.raises(LinkError) as during:
            await asyncio.wait_for(in_flight, 10)
        with pytest.raises(LinkError) as after:
            await link.heartbeat()
        return beat, during.value, after.value

    beat, during, after = _run(go())
    assert beat is True
    assert "unreachable" in str(during) and "unreachable" in str(after)
    assert not deployment.is_alive(0) and deployment.exit_info(0) is None  # lost, not crashed


def test_a_crashed_node_reports_its_exit_and_restarts_with_a_fresh_agent(
    deployment: InProcessDeployment,
) -> None:
    deployment.crash(0, exit_code=3, output=("boom",))
    exit = deployment.exit_info(0)
    assert exit is not None and exit.exit_code == 3 and exit.output == ("boom",)
    deployment.restart(0)

    async def go() -> bool:
        link = deployment.link(0, b"")
        await link.connect()
        return await link.heartbeat()

    assert _run(go()) is True and deployment.is_alive(0)


def test_a_closed_link_refuses_to_send(deployment: InProcessDeployment) -> None:
    async def go() -> None:
        link = deployment.link(0, b"")
        await link.connect()
        await link.close()
        await link.close()  # twice is fine
        with pytest.raises(LinkError, match="not connected"):
            await link.heartbeat()
        sent = link.run("t-1", b"")  # answers a future (see `Link.run`): the failure is in it, never raised
        with pytest.raises(LinkError, match="not connected"):
            await sent

    _run(go())


def test_run_then_answers_a_callback_with_the_reply_or_the_failure(deployment: InProcessDeployment) -> None:
    """`run_then` (the dispatcher's path for tasks without blobs): the reply's bytes, or a `LinkError` when the
    link is closed or the node goes down with the task in flight, reach ``then(token, answer)`` on the loop."""

    async def go() -> list[tuple[object, object, bool]]:
        loop, answers = asyncio.get_running_loop(), asyncio.Queue[tuple[object, object, bool]]()

        def then(token: object, answer: object) -> None:
            answers.put_nowait((token, answer, asyncio.get_running_loop() is loop))

        link = deployment.link(0, b"")
        await link.connect()
        link.run_then("t-1", encode_task(where, (7,), {}).payload, then, "first")
        got = [await asyncio.wait_for(answers.get(), 10)]
        link.run_then("t-2", encode_task(time.sleep, (2,), {}).payload, then, "lost")
        await asyncio.sleep(0.1)
        await asyncio.to_thread(deployment.lose, 0)
        got.append(await asyncio.wait_for(answers.get(), 10))
        closed = deployment.link(0, b"")  # never connected
        closed.run_then("t-3", b"", then, "closed")
        got.append(await asyncio.wait_for(answers.get(), 10))
        return got

    (token, reply, on_loop), *failures = _run(go())
    assert (
        token == "first"
        and on_loop
        and replies.result(reply, "node")[:2] == (49, deployment.nodes[0].info.name)
    )
    assert [(t, type(a), ok) for t, a, ok in failures] == [
        ("lost", LinkError, True),
        ("closed", LinkError, True),
    ]


def test_virtual_slots_answer_each_task_once_and_withdraw_only_queued_ones() -> None:
    """A withdrawn task is answered `Cancelled` and never runs, even when its id comes back and runs after it;
    a held one cannot be withdrawn; shutting down answers the queued ones."""
    from skyward.blobs import BlobStore
    from skyward.inprocess import VirtualSlots

    async def go() -> list[tuple[str, object]]:
        answers: list[tuple[str, object]] = []

        def done(task_id: str, reply: bytes) -> None:
            decoded = replies.decode(reply)
            answers.append((task_id, decoded.value()[0] if isinstance(decoded, replies.Ok) else decoded))

        slots = VirtualSlots(1, BlobStore(), 0.05)
        for n in range(3):
            slots.submit(encode_task(where, (n,), {}).payload, f"t-{n}", (), done)
        assert not slots.cancel("t-0") and slots.cancel("t-1") and not slots.cancel("t-1")
        slots.submit(encode_task(where, (5,), {}).payload, "t-1", (), done)  # sent again after the steal
        await asyncio.sleep(0.4)
        slots.submit(encode_task(where, (6,), {}).payload, "t-6", (), done)
        slots.submit(encode_task(where, (7,), {}).payload, "t-7", (), done)
        slots.shutdown()
        await asyncio.sleep(0.1)
        return answers

    assert _run(go()) == [
        ("t-1", replies.Cancelled()), ("t-0", 0), ("t-2", 4), ("t-1", 25), ("t-7", replies.Cancelled()),
    ]  # fmt: skip


def test_latency_is_added_each_way() -> None:
    deployment = InProcess(latency=0.05).launch(_cluster(), Image(), b"", 60.0)
    try:

        async def go() -> float:
            link = deployment.link(0, b"")
            await link.connect()
            started = time.monotonic()
            await link.heartbeat()
            return time.monotonic() - started

        assert _run(go()) >= 0.1  # a lower bound: never flaky on a slow machine
    finally:
        deployment.close()


def test_a_delay_line_runs_calls_in_order_and_never_early() -> None:
    async def go() -> list[tuple[str, float, float]]:
        loop = asyncio.get_running_loop()
        line, seen, start = DelayLine(loop), [], loop.time()

        def note(name: str, due: float) -> None:
            seen.append((name, due, loop.time()))

        for name, delay in (("a", 0.05), ("b", 0.10), ("late-added, early", 0.02)):
            line.add_at(start + delay, note, name, start + delay)
        await asyncio.sleep(0.3)
        return seen

    seen = _run(go())
    assert [name for name, _, _ in seen] == [
        "a",
        "b",
        "late-added, early",
    ]  # FIFO: after b, never before its time
    assert all(ran >= due for _, due, ran in seen)


def test_linkerror_is_one_class_wherever_imported() -> None:
    assert TransportLinkError is LinkError


@pytest.mark.parametrize("implementation", [NodeLink, InProcessLink])
def test_both_links_implement_the_protocol(implementation: type) -> None:
    """Runtime twin of `skyward.link._conforms` (checked by mypy): same coroutine methods (`run` may also answer
    a future), same parameters."""
    members = [name for name in vars(Link) if not name.startswith("_")]
    assert set(members) == {"connect", "run", "put_blob", "cancel", "heartbeat", "close"}
    for name in members:
        method = getattr(implementation, name)
        if name != "run":
            assert inspect.iscoroutinefunction(method), f"{implementation.__name__}.{name} is not async"
        expected = inspect.signature(getattr(Link, name)).parameters
        actual = inspect.signature(method).parameters
        assert [(p.name, p.kind, p.default) for p in actual.values()] == [
            (p.name, p.kind, p.default) for p in expected.values()
        ], f"{implementation.__name__}.{name}{inspect.signature(method)}"
