"""Helpers the nodes import by name: a scorer that records which process fitted and scored each split."""

from __future__ import annotations

import os
import uuid
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
