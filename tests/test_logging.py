"""What skyward says goes through `logging`, under named loggers, at the level it deserves.

(The AWS teardown's Ctrl-C message is checked in tests/aws/test_aws_interrupts_moto.py; casty's events in
tests/security.)
"""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

import skyward as sky
from skyward.bootstrap.progress import BootstrapEvent
from skyward.providers.ssh_deployment import _show


def _raises(_: object) -> None:
    raise RuntimeError("display broke")


def test_a_broken_ssh_progress_callback_is_a_warning_of_skyward_ssh(caplog: pytest.LogCaptureFixture) -> None:
    event = BootstrapEvent("node-0", "alpha", "connect", "", 0.0)
    _show(sky.SSH(hosts=["alpha"], progress=_raises), event)  # the bootstrap goes on: nothing raised here
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("skyward.ssh", logging.WARNING)
    assert record.getMessage() == "the progress callback raised RuntimeError: display broke"


def test_a_broken_slurm_progress_callback_is_a_warning_of_skyward_slurm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sky.Slurm(progress=_raises)._report("slurm job 7: PENDING")
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("skyward.slurm", logging.WARNING)
    assert "RuntimeError: display broke" in record.getMessage()


def test_without_a_callback_progress_is_printed_not_logged(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    sky.Slurm()._report("slurm job 7: RUNNING")
    assert not caplog.records
    assert "slurm job 7: RUNNING" in capsys.readouterr().err


def _node_warnings(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]


def _until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_node_is_one_warning_with_its_signal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="skyward")
    with sky.ComputePool(nodes=2, restart_nodes=False) as pool:
        victim, survivor = pool.nodes
        os.kill(victim.pid, signal.SIGKILL)
        _until(lambda: pool.total_slots == 1)
        assert _pid() >> pool == survivor.pid != os.getpid()  # the work goes on, on the other node
        (warning,) = _node_warnings(caplog, victim.name)
    assert (warning.name, warning.levelno) == ("skyward.scheduler", logging.WARNING)
    assert warning.getMessage() == (
        f"node {victim.name} is down: its worker process died (killed by signal 9 (SIGKILL)); "
        "not restarting it: restarts are off"
    )


def test_a_node_whose_process_exits_is_one_warning_with_its_exit_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sky.ComputePool(nodes=1, max_task_crashes=1) as pool:
        name = pool.nodes[0].name
        with pytest.raises(sky.WorkerCrashed):
            _exit(7) >> pool
        (warning,) = _node_warnings(caplog, name)
        # how the client noticed (the process gone, or its link failing first) may follow
        assert (
            f"node {name} is down: its worker process died (exit code 7); restarting it"
            in warning.getMessage()
        )
        _until(lambda: pool.total_slots == 1)  # restarted: the restart itself is an INFO
        assert _pid() >> pool == pool.nodes[0].pid != os.getpid()
    assert len(_node_warnings(caplog, pool.cluster.pool_id)) == 1


def test_a_frozen_node_is_one_warning_about_its_missed_heartbeats(caplog: pytest.LogCaptureFixture) -> None:
    with sky.ComputePool(nodes=2, lease=2.0) as pool:  # heartbeats every 0.5 s, silence limit 1.5 s
        frozen, survivor = pool.nodes
        os.kill(frozen.pid, signal.SIGSTOP)  # a frozen host: its link stays open, it answers nothing
        try:
            _until(lambda: pool.total_slots == 1)
            assert _pid() >> pool == survivor.pid
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        (warning,) = _node_warnings(caplog, frozen.name)
    assert (warning.name, warning.levelno) == ("skyward.scheduler", logging.WARNING)
    assert warning.getMessage() == f"node {frozen.name} is lost: no answer to heartbeats for 2s"


@sky.compute
def _pid() -> int:
    return os.getpid()


@sky.compute
def _exit(code: int) -> None:
    os._exit(code)
