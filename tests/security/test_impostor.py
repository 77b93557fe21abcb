"""Issue 12, High: a process on a dead node's port must not run code on the client, nor learn anything to replay.

End to end: a real 2-node Local pool; node 0's worker is killed and an impostor (`impostor.py`: a real casty system
speaking skyward's messages, or a raw recorder) binds its real port at once and answers every task with a reply
whose unpickling would create a marker directory on the client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attackers import outsider
from proc_utils import wait_gone

import skyward as sky
from skyward import transport
from skyward.ioloop import shared_loop

IMPOSTOR = str(Path(__file__).with_name("impostor.py"))


def where(count_file: str) -> tuple[str, int]:
    """A task with an effect that can be counted: one line per run, wherever it runs."""
    with open(count_file, "a") as f:
        f.write(f"{os.environ.get('SKYWARD_NODE')}\n")
    return os.environ.get("SKYWARD_NODE", ""), os.getpid()


@pytest.fixture
def pool() -> Iterator[sky.ComputePool]:
    # restart_nodes=False: the killed node stays down, so what the test sees of it does not race its restart.
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=1), restart_nodes=False) as pool:
        yield pool


def _start_impostor(
    mode: str, port: int, node_name: str, record: Path, marker: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    deadline = time.monotonic() + 20
    while True:  # the port may take a moment to be free once the worker is gone
        process = subprocess.Popen(
            [sys.executable, IMPOSTOR, mode, str(port), node_name, str(record), str(marker)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        assert process.stdout is not None
        first = process.stdout.readline()
        if first.strip() == b"ready":
            return process
        process.kill()
        process.wait()
        if time.monotonic() > deadline:
            raise AssertionError(f"the impostor did not start: {first!r}")
        time.sleep(0.2)


def _recorded(record: Path) -> list[tuple[str, tuple[object, ...]]]:
    messages = []
    if record.exists():
        with record.open("rb") as f:
            while True:
                try:
                    messages.append(pickle.load(f))
                except EOFError:
                    return messages
    return messages


async def _replay_as_outsider(
    port: int, node_name: str, messages: list[tuple[str, tuple[object, ...]]]
) -> list[object]:
    """Send what the impostor got to a live node, as the attacker can: a casty client with no pool certificate."""
    async with outsider(port, node_name) as client:
        if client is None:
            return ["refused at the door"] * len(messages)
        advertise = transport.advertised_address(node_name, port)
        ref = client.ref(transport.task_executor, transport._ACTOR_KEY, at=advertise)
        answers: list[object] = []
        for kind, fields in messages:
            try:
                async with asyncio.timeout(10):
                    answers.append(await ref.ask(getattr(transport, kind)(*fields)))
            except Exception as exc:  # noqa: BLE001 - a refusal, whatever form it takes
                answers.append(exc)
        return answers


@pytest.mark.parametrize("mode", ["plain", "own-tls", "raw"])
def test_an_impostor_on_a_dead_nodes_port_runs_nothing_on_the_client(
    pool: sky.ComputePool,
    mode: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="skyward")
    deployment = pool._deployment
    assert deployment is not None
    victim, survivor = deployment.nodes
    count_file = str(tmp_path / "runs")
    warm = pool.broadcast(where, count_file)
    assert [pid for _, pid in warm] == [victim.info.pid, survivor.info.pid]  # both really ran, remotely
    # The provider must not see node 0 go (nor relaunch it): the attack needs the moments between a crash and the
    # provider noticing it. A provider that restarts crashed nodes relaunches them through the same launch path,
    # with the same identity; the impostor here binds the port first, which such a restart cannot prevent.
    monkeypatch.setattr(deployment, "is_alive", lambda index: True)

    os.kill(victim.info.pid, signal.SIGKILL)
    assert not wait_gone({victim.info.pid})
    record, marker = tmp_path / "record", tmp_path / "ran-on-the-client"
    impostor = _start_impostor(mode, victim.port, victim.info.name, record, marker)
    try:
        time.sleep(
            3
        )  # the client's member table (synced every second) now lists the impostor under the node's name
        results = [
            future.result(timeout=120) for future in [pool.submit(where, count_file) for _ in range(6)]
        ]
    finally:
        impostor.kill()
        impostor.wait()

    assert not marker.exists(), "the impostor's reply was unpickled on the client"
    assert results == [(survivor.info.name, survivor.info.pid)] * 6  # the work finished on the other node
    scheduler = pool._scheduler
    assert scheduler is not None and not scheduler.nodes[0].alive and scheduler.nodes[1].alive
    lost = [
        r.getMessage()
        for r in caplog.records
        if r.name == "skyward.scheduler" and ("is lost" in r.getMessage() or "is down" in r.getMessage())
    ]
    assert lost and victim.info.name in lost[0] and "TLS" in lost[0], lost

    runs_before = Path(count_file).read_text().splitlines()
    if mode == "raw":
        captured = record.read_bytes() if record.exists() else b""
        assert (
            pool._secret not in captured and b"where" not in captured
        )  # nothing readable: a TLS hello at most
        if captured:  # replayed to the live node: a stale handshake that leads nowhere
            with socket.create_connection(("127.0.0.1", survivor.port), timeout=5) as sock:
                sock.sendall(captured)
                sock.settimeout(2)
                try:
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
    else:
        messages = _recorded(record)
        assert not any(kind == "RunTask" for kind, _ in messages), (
            f"the impostor received tasks: {messages!r}"
        )
        for _, fields in messages:
            assert not any(field == pool._secret for field in fields), (
                "the pool's secret reached the impostor"
            )
        # Whatever it got, sent again to the live node as an outsider can: refused.
        answers = (
            shared_loop().run(_replay_as_outsider(survivor.port, survivor.info.name, messages)).result(60)
        )
        assert all(
            answer in ("refused at the door", False) or isinstance(answer, Exception) for answer in answers
        )
    assert pool.submit(where, count_file).result(timeout=60) == (survivor.info.name, survivor.info.pid)
    assert Path(count_file).read_text().splitlines() == [
        *runs_before,
        survivor.info.name,
    ]  # the replay ran nothing
