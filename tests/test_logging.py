"""What skyward says goes through `logging`, under named loggers, at the level it deserves.

(The AWS teardown's Ctrl-C message is checked in tests/aws/test_aws_interrupts_moto.py; casty's events in
tests/security.)
"""

from __future__ import annotations

import ast
import logging
import os
import signal
import time
import types
from pathlib import Path

import pytest

import skyward as sky
from skyward.bootstrap.progress import BootstrapEvent
from skyward.providers.aws.deployment import AWSDeployment
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


def test_without_a_callback_slurm_status_is_a_line_and_an_info_record(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="skyward")
    sky.Slurm()._report("slurm job 7: RUNNING")
    assert "skyward: slurm job 7: RUNNING" in capsys.readouterr().err
    sky.Slurm(quiet=True)._report("slurm job 7: COMPLETING")
    assert capsys.readouterr().err == ""
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        ("skyward.slurm", logging.INFO, "slurm job 7: RUNNING"),
        ("skyward.slurm", logging.INFO, "slurm job 7: COMPLETING"),
    ]


def test_aws_status_is_a_line_and_an_info_record_of_skyward_aws(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="skyward")
    for quiet in (False, True):
        deployment = types.SimpleNamespace(_provider=types.SimpleNamespace(quiet=quiet), pool_id="sky-1234")
        AWSDeployment._say(deployment, "launching 2 x t3.micro")  # type: ignore[arg-type]
    assert capsys.readouterr().err == "skyward [aws sky-1234] launching 2 x t3.micro\n"  # quiet: no line
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("skyward.aws", logging.INFO, "sky-1234: launching 2 x t3.micro")
    ] * 2


# Modules that may print: the progress display (opt-in, on stderr), the command line's output, and the node
# agent's ready line (its protocol with the client, on stdout).
PRINT_ALLOWED = {"progress_display.py", "bootstrap/progress.py", "worker/__main__.py", "cli/"}


def test_no_bare_print_outside_the_display_and_the_command_line() -> None:
    package = Path(sky.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if any(relative == allowed or relative.startswith(allowed) for allowed in PRINT_ALLOWED if allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{relative}:{node.lineno}")
    assert found == [], f"print() outside the display: {found}; use a named logger (skyward.<area>)"


def test_the_worker_prints_only_its_ready_line() -> None:
    source = (Path(sky.__file__).parent / "worker" / "__main__.py").read_text()
    calls = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    assert len(calls) == 1 and "READY_PREFIX" in calls[0], calls


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
