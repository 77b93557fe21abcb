"""Helpers the nodes import by name: a scorer that records which process fitted and scored each split, and tasks
that look at the warning filters they run under."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from pathlib import Path

from sklearn.metrics import accuracy_score


class RecordingScorer:
    """Accuracy, plus a file ``<pid>-<random>`` in `directory` for every call (one per fitted split)."""

    def __init__(self, directory: Path) -> None:
        self.directory = str(directory)

    def __call__(self, estimator, X, y) -> float:  # type: ignore[no-untyped-def]
        (Path(self.directory) / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
        return float(accuracy_score(y, estimator.predict(X)))

    def pids(self) -> set[int]:
        return {int(path.name.split("-")[0]) for path in Path(self.directory).iterdir()}

    def calls(self) -> int:
        return len(list(Path(self.directory).iterdir()))


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.01)


def _action_for(category: type[Warning]) -> str:
    """The action ``warnings.warn(..., category)`` would take here now (message-less filters only)."""
    for action, message, filter_category, _module, _lineno in warnings.filters:
        if message is None and issubclass(category, filter_category):
            return str(action)
    return "default"


def overlapping_filters(role: str, directory: str) -> tuple[str, str, int]:
    """Two tasks inside scikit-learn's per-task ``catch_warnings`` on one node: "first" ends while "second" is
    still running. Returns the action "second" then gets for a ConvergenceWarning (with its pid)."""
    from sklearn.exceptions import ConvergenceWarning

    here = Path(directory)
    if role == "first":
        _wait_for(here / "second-entered")
        (here / "first-done").touch()
        return role, "", os.getpid()  # its catch_warnings ends right after this returns
    (here / "second-entered").touch()
    _wait_for(here / "first-done")
    time.sleep(0.3)  # the first task's catch_warnings has ended by now
    return role, _action_for(ConvergenceWarning), os.getpid()
