"""What skyward says goes through `logging`, under named loggers, at the level it deserves.

(The AWS teardown's Ctrl-C message is checked in tests/aws/test_aws_interrupts_moto.py; casty's events in
tests/security; node loss in tests/test_scheduling.py.)
"""

from __future__ import annotations

import logging

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
