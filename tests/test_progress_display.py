"""The progress display: a live table and bars in a terminal (a real pseudo-terminal here), plain lines
elsewhere, and nothing from a quiet provider."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import textwrap

import pytest

import skyward as sky
from skyward.bootstrap.progress import BootstrapEvent
from skyward.progress_display import BootstrapDisplay, CallProgress


def _in_a_terminal(code: str) -> str:
    """Run `code` with stderr on a pseudo-terminal; return what the terminal received."""
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"},
    )
    os.close(slave)
    received = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        received += chunk
    assert child.wait(30) == 0, received.decode(errors="replace")
    os.close(master)
    return received.decode(errors="replace")


EVENTS = """
    from skyward.bootstrap.progress import BootstrapEvent
    from skyward.progress_display import BootstrapDisplay
    display = BootstrapDisplay()
    for node in ("node-0", "node-1"):
        display(BootstrapEvent(node, "alpha", "connect", "", 0.0))
    display(BootstrapEvent("node-0", "alpha", "install", "uv venv", 1.5))
    display(BootstrapEvent("node-0", "alpha", "ready", "worker pid 42", 2.0))
    display(BootstrapEvent("node-1", "alpha", "ready", "worker pid 43", 2.5))
    display.close()
"""


def test_in_a_terminal_the_nodes_are_one_live_table() -> None:
    shown = _in_a_terminal(EVENTS)
    assert "\x1b[" in shown  # redrawn in place (cursor movement), not appended
    assert "starting nodes" in shown and "node-0" in shown and "node-1" in shown
    assert "worker pid 43" in shown  # the last state is left on screen
    assert "skyward [node-0 alpha]" not in shown  # not the plain-line form


def test_elsewhere_each_event_is_one_plain_line() -> None:
    stream = io.StringIO()
    display = BootstrapDisplay(stream)
    display(BootstrapEvent("node-0", "alpha", "connect", "", 0.0))
    display(BootstrapEvent("node-0", "alpha", "ready", "worker pid 42", 2.0))
    display.close()
    assert stream.getvalue().splitlines() == [
        "skyward [node-0 alpha] connect (0.0s)",
        "skyward [node-0 alpha] ready: worker pid 42 (2.0s)",
    ]
    assert "\x1b" not in stream.getvalue()


def test_a_calls_progress_is_a_bar_in_a_terminal() -> None:
    shown = _in_a_terminal(
        """
        from skyward.progress_display import CallProgress
        with CallProgress(40, "forty calls") as progress:
            for _ in range(40):
                progress.advance()
        """
    )
    assert "forty calls" in shown and "40/40" in shown and "\x1b[" in shown


def test_a_calls_progress_elsewhere_is_a_line_per_tenth() -> None:
    stream = io.StringIO()
    with CallProgress(25, "some calls", stream) as progress:
        for _ in range(25):
            progress.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("skyward: some calls: 3/25 done") and lines[-1].startswith(
        "skyward: some calls: 25/25"
    )


@sky.compute
def _where(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_gather_with_progress_reports_while_it_waits(capsys: pytest.CaptureFixture[str]) -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2)) as pool:
        results = sky.gather(*(_where(i) for i in range(20)), progress=True) >> pool
        node_pid = pool.nodes[0].pid
    assert [x for x, _ in results] == list(range(20))
    assert {pid for _, pid in results} == {node_pid} != {os.getpid()}
    err = capsys.readouterr().err
    assert "skyward: sky.gather of 20 calls: 20/20 done" in err
    quiet = sky.gather(*(_where(i) for i in range(3)))
    assert quiet.progress is False


MAP_IN_A_TERMINAL = """
    import os, time
    import skyward as sky

    def nap(seconds):
        time.sleep(seconds)
        return os.getpid()

    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2)) as pool:
        pids = set(pool.map(nap, [0.25] * 12))  # about 1.5 s: past the automatic bar's 1 s
        assert pids == {pool.nodes[0].pid} != {os.getpid()}, pids
        assert len(list(pool.map(nap, [0.0] * 3))) == 3  # short: no bar
"""


def test_a_long_map_shows_a_bar_in_a_terminal_by_itself() -> None:
    shown = _in_a_terminal(MAP_IN_A_TERMINAL)
    assert "pool.map of 12 tasks" in shown and "12/12" in shown and "\x1b[" in shown
    assert "pool.map of 3 tasks" not in shown


def _nap_pid(seconds: float) -> int:
    import time

    time.sleep(seconds)
    return os.getpid()


def test_a_maps_progress_elsewhere_is_lines_when_asked_and_nothing_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2)) as pool:
        assert set(pool.map(_nap_pid, [0.1] * 20)) == {pool.nodes[0].pid}  # automatic: not a terminal
        assert capsys.readouterr().err == ""
        pids = set(pool.map(_nap_pid, [0.0] * 20, progress=True, chunksize=2))
        assert pids == {pool.nodes[0].pid} != {os.getpid()}
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skyward: pool.map")]
    assert len(lines) == 10 and lines[-1].startswith("skyward: pool.map of 10 tasks: 10/10 done")


def test_a_quiet_provider_shows_no_automatic_bar() -> None:
    code = MAP_IN_A_TERMINAL.replace("sky.ComputePool(", "sky.ComputePool(sky.Local(quiet=True), ")
    shown = _in_a_terminal(code)
    assert "pool.map" not in shown
