"""Pool lifecycle on the Local provider: nothing left running, whatever way the block ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from proc_utils import process_exists, wait_gone

import skyward as sky
from skyward.providers import local
from skyward.providers.local import LocalDeployment


@sky.compute
def pid() -> int:
    return os.getpid()


@sky.compute
def slot_pids(n: int) -> list[int]:
    return [os.getpid()] * n


def _worker_pids(pool: sky.ComputePool) -> set[int]:
    return {n.pid for n in pool.nodes}


def test_no_worker_left_after_a_normal_exit() -> None:
    with sky.ComputePool(nodes=2) as pool:
        pids = _worker_pids(pool)
        assert all(process_exists(p) for p in pids)
        assert {pid() >> pool for _ in range(6)} <= pids
    assert wait_gone(pids, timeout=1) == set()  # teardown waits for them: gone on return
    assert pool.total_slots == 0 and pool.nodes == []


def test_no_worker_left_after_an_exception_in_the_block() -> None:
    with pytest.raises(ZeroDivisionError), sky.ComputePool(nodes=2) as pool:
        pids = _worker_pids(pool)
        raise ZeroDivisionError("inside the block")
    assert wait_gone(pids, timeout=1) == set()


def test_outside_the_block_is_a_clear_error() -> None:
    pool = sky.ComputePool(nodes=1)
    with pytest.raises(sky.SkywardError, match="not active"):
        pid() >> pool
    with pytest.raises(sky.NoActivePool, match="ComputePool"):
        pid() >> sky


def test_process_executor_runs_each_slot_in_a_process_of_its_own() -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2, executor="process")) as pool:
        agent = pool.nodes[0].pid
        pids = {f.result() for f in [pid() > pool for _ in range(8)]}
        assert agent not in pids and os.getpid() not in pids
        assert 1 <= len(pids) <= 2
        children = set(pids)
    assert wait_gone(children | {agent}, timeout=2) == set()


def test_keyboard_interrupt_during_running_work_tears_everything_down() -> None:
    @sky.compute
    def sleepy() -> None:
        time.sleep(30)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2, executor="process")) as pool:
            pids = _worker_pids(pool)
            futures = [sleepy() > pool for _ in range(4)]
            time.sleep(0.5)
            raise KeyboardInterrupt
    assert time.monotonic() - started < 15
    assert wait_gone(pids, timeout=2) == set()
    assert all(f.cancelled() for f in futures)


def test_workers_exit_by_themselves_when_the_client_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            import skyward as sky

            @sky.compute
            def sleepy():
                time.sleep(60)

            with sky.ComputePool(nodes=2) as pool:
                futures = [sleepy() > pool for _ in range(2)]
                print(" ".join(str(n.pid) for n in pool.nodes), flush=True)
                time.sleep(120)
            """
        )
    )
    client = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert client.stdout is not None
    pids = {int(p) for p in client.stdout.readline().split()}
    assert len(pids) == 2 and all(process_exists(p) for p in pids)
    client.send_signal(signal.SIGKILL)
    client.wait()
    assert wait_gone(pids, timeout=10) == set(), "workers outlived their client"


def test_local_refuses_an_image_it_cannot_satisfy() -> None:
    image = sky.Image(pip=("surely-not-installed-package-xyz", "pluggy<0.1"))
    with pytest.raises(sky.ProvisionError) as caught, sky.ComputePool(image=image):
        pass
    message = str(caught.value)
    assert "surely-not-installed-package-xyz" in message and "not installed" in message
    assert "pluggy<0.1" in message and "installed:" in message


def test_local_refuses_another_python() -> None:
    with pytest.raises(sky.ProvisionError, match="Python"):
        with sky.ComputePool(image=sky.Image(python="2.7")):
            pass


def test_image_env_reaches_the_node() -> None:
    @sky.compute
    def env(name: str) -> str | None:
        return os.environ.get(name)

    with sky.ComputePool(image=sky.Image(env={"SKYWARD_TEST_VALUE": "42"})) as pool:
        assert env("SKYWARD_TEST_VALUE") >> pool == "42"


def test_task_output_is_forwarded_with_the_node_prefix(capfd: pytest.CaptureFixture[str]) -> None:
    @sky.compute
    def talk() -> None:
        print("hello from the node", flush=True)

    with sky.ComputePool(nodes=1) as pool:
        talk() >> pool
        name = pool.nodes[0].name
        time.sleep(0.3)  # output travels on its own pipe
    out = capfd.readouterr().out
    assert f"[{name}] hello from the node" in out


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"nodes": 0}, ValueError),
        ({"nodes": "2"}, ValueError),
        ({"worker": "thread"}, TypeError),
        ({"image": {"pip": []}}, TypeError),
        ({"lease": 0}, ValueError),
    ],
)
def test_bad_pool_arguments_fail_at_construction(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        sky.ComputePool(**kwargs)


@pytest.mark.parametrize("kwargs", [{"concurrency": 0}, {"concurrency": True}, {"executor": "fiber"}])
def test_bad_worker_spec(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sky.Worker(**kwargs)


def test_image_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="sequence"):
        sky.Image(pip="numpy")  # type: ignore[arg-type]


def test_a_pool_cannot_be_entered_twice_at_once() -> None:
    pool = sky.ComputePool(nodes=1)
    with pool, pytest.raises(sky.SkywardError, match="already started"):
        pool.__enter__()
    # and can be used again afterwards
    with pool:
        assert pid() >> pool != os.getpid()


def stray(seconds: int) -> tuple[int, int]:
    """Start a process that outlives the node (a session of its own) and holds the node's output pipe."""
    child = subprocess.Popen(["sleep", str(seconds)], start_new_session=True)  # inherits the node's stdout
    return child.pid, os.getpid()


class _RecordedWait(threading.Event):
    """An event that records how long each wait for it was allowed."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self._waits.append(timeout if timeout is not None else float("inf"))
        return super().wait(timeout)


def test_teardown_waits_for_every_nodes_output_at_once_not_node_after_node() -> None:
    waits: list[float] = []
    with sky.ComputePool(nodes=2) as pool:
        strays = pool.broadcast(stray, 60)
        assert {node for _, node in strays} == {n.pid for n in pool.nodes} and os.getpid() not in dict(strays)
        deployment = pool._deployment
        assert isinstance(deployment, LocalDeployment)
        for process in deployment._processes.values():  # both pipes stay open: the pump never sees EOF
            process.eof = _RecordedWait(waits)
    try:
        # One bound for both nodes: the first wait gets (about) all of it, the second what is left (nothing).
        assert len(waits) == 2 and waits[0] > 1.0 and waits[1] < 0.5, waits
        assert sum(waits) <= local._DRAIN_WAIT, waits
    finally:
        for child, _ in strays:
            os.kill(child, signal.SIGKILL)
