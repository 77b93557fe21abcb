"""The node watchdog of the user data, run here with short times: it powers the node off once its client is gone
(never connected, disconnected while bootstrapping, or its worker exited after the lease) and not before.

``shutdown`` is a stub on ``PATH`` that records its arguments; ``pgrep`` and ``ss`` are the real ones.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyward.providers.aws.userdata import WatchdogTimes, watchdog_script

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "pgrep", "ss")), reason="needs bash, pgrep and ss"
)


class Watchdog:
    def __init__(self, folder: Path, times: WatchdogTimes, port: int) -> None:
        self.marker = f"skyward-watchdog-test-{uuid.uuid4().hex}"  # what "the worker" is, for this test only
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        self.powered_off = folder / "powered-off"
        stub = bin_dir / "shutdown"
        stub.write_text(f'#!/bin/bash\necho "$@" > {self.powered_off}\n')
        stub.chmod(0o755)
        script = folder / "watchdog"
        script.write_text(watchdog_script(times, worker_pattern=self.marker, ssh_port=port))
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["bash", str(script)],
            env={"PATH": f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin"},
            stderr=subprocess.PIPE,
            text=True,
        )

    def worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", self.marker])

    def wait_off(self, timeout: float) -> tuple[str, float]:
        """The reason given to shutdown, and when (seconds since start); fails if it did not happen."""
        self.process.wait(timeout)
        return self.powered_off.read_text().strip(), time.monotonic() - self.started

    def is_running(self) -> bool:
        return self.process.poll() is None and not self.powered_off.exists()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Stands in for sshd: a port the watchdog watches for established connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server
    server.close()


@pytest.fixture
def watchdog(tmp_path: Path, listener: socket.socket) -> Iterator[Watchdog]:
    dog = Watchdog(tmp_path, WatchdogTimes(connect_grace=1, idle=1, poll=0.1), listener.getsockname()[1])
    yield dog
    dog.stop()


def test_no_client_ever_connects_powers_off_after_the_grace(watchdog: Watchdog) -> None:
    reason, when = watchdog.wait_off(timeout=10)
    assert reason == "-h now skyward: no client connected within 1s"
    assert when < 4


def test_a_running_worker_keeps_the_node_and_its_exit_powers_it_off(watchdog: Watchdog) -> None:
    worker = watchdog.worker()
    try:
        time.sleep(2.5)  # past the connect grace: the worker alone keeps the node
        assert watchdog.is_running()
    finally:
        worker.kill()
        worker.wait()
    gone = time.monotonic()
    reason, _ = watchdog.wait_off(timeout=5)
    assert reason.endswith("its worker exited (the pool ended, or its client went silent past the lease)")
    assert time.monotonic() - gone < 2


def test_a_connected_client_keeps_the_node_while_bootstrapping(
    watchdog: Watchdog, listener: socket.socket
) -> None:
    client = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    try:
        time.sleep(2.5)  # past the connect grace: the open connection keeps the node
        assert watchdog.is_running()
    finally:
        client.close()
        server_side.close()
    reason, _ = watchdog.wait_off(timeout=10)
    assert reason == "-h now skyward: no client connection for 1s while bootstrapping"
