"""benchmarks/simulate.py, run small: every task accounted for, and the output line in its documented shape.

Its speed is never asserted here (the figures live on the Benchmarks page).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

LAST_LINE = re.compile(
    r"^simulate: nodes=(\d+) slots=(\d+) tasks=(\d+) efficiency=\d+\.\d{3} client_us_per_task=\d+\.\d$"
)


@pytest.fixture(scope="module")
def simulate() -> ModuleType:
    path = Path(__file__).parent.parent / "benchmarks" / "simulate.py"
    spec = importlib.util.spec_from_file_location("simulate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate"] = module  # its task function is then pickled by reference, as in a real run
    spec.loader.exec_module(module)
    return module


def test_every_task_completes_and_the_last_line_has_its_shape(
    simulate: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = simulate.main(["--nodes", "20", "--slots", "2", "--tasks", "200", "--task-seconds", "0.05"])
    assert (outcome.results, outcome.errors, outcome.missing) == (200, 0, 0)
    assert outcome.node_cpu > 0  # the nodes' thread did the agents' work, and it was told apart
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = LAST_LINE.match(last)
    assert match is not None, last
    assert match.groups() == ("20", "2", "200")


def test_a_node_loss_run_accounts_for_every_task(
    simulate: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = simulate.main(
        ["--nodes", "10", "--slots", "2", "--tasks", "200", "--task-seconds", "0.05", "--lose", "0.2"]
    )
    assert outcome.lost_nodes == 2
    assert outcome.missing == 0 and outcome.results + outcome.errors == 200
    out = capsys.readouterr().out
    assert "node loss: lost_nodes=2 " in out and " missing=0" in out
    assert LAST_LINE.match(out.strip().splitlines()[-1])
