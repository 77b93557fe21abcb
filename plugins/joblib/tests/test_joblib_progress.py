"""A joblib call's progress: a bar in a terminal (a real pseudo-terminal here) once the call runs a second,
plain lines elsewhere when asked, nothing by default outside a terminal. Real local worker processes."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap

import joblib
import pytest
from joblib import Parallel, delayed
from joblib_plugin_tasks import where

import skyward as sky


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
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        received += chunk
    assert child.wait(60) == 0, received.decode(errors="replace")
    os.close(master)
    return received.decode(errors="replace")


def test_a_long_joblib_call_shows_a_bar_in_a_terminal() -> None:
    shown = _in_a_terminal(
        """
        import os, time
        from joblib import Parallel, delayed
        import skyward as sky

        def nap(seconds):
            time.sleep(seconds)
            return os.getpid()

        with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]) as pool:
            pids = set(Parallel(n_jobs=-1, batch_size=1)(delayed(nap)(0.25) for _ in range(12)))
            assert pids == {pool.nodes[0].pid} != {os.getpid()}, pids
            assert len(Parallel(n_jobs=-1)(delayed(nap)(0) for _ in range(3))) == 3  # short: no bar
        """
    )
    assert "joblib Parallel" in shown and "12/12" in shown and "\x1b[" in shown
    assert "3/3" not in shown


def test_progress_elsewhere_is_lines_when_asked_and_nothing_by_default(
    joblib_pool: sky.ComputePool, worker_pids: set[int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert {pid for _, pid in Parallel(n_jobs=-1)(delayed(where)(i) for i in range(40))} <= worker_pids
    assert "skyward:" not in capsys.readouterr().err
    with joblib.parallel_config(backend="skyward", progress=True):
        results = Parallel(n_jobs=-1, batch_size=2)(
            [delayed(where)(i) for i in range(40)]
        )  # 40 known at once
        over_a_generator = Parallel(n_jobs=-1, batch_size=2)(delayed(where)(i) for i in range(40))
    assert [x for x, _ in results] == [x for x, _ in over_a_generator] == [i * i for i in range(40)]
    assert {pid for _, pid in results} <= worker_pids and os.getpid() not in worker_pids
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skyward: joblib")]
    assert len(lines[:10]) == 10 and lines[9].startswith("skyward: joblib Parallel: 40/40 done"), lines
    # over a generator the total is known once joblib has taken it all: lines from then on, ending at 40/40
    assert 1 <= len(lines[10:]) <= 10 and lines[-1].startswith("skyward: joblib Parallel: 40/40 done"), lines
