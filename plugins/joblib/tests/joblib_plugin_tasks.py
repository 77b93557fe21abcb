"""Task functions of the joblib plugin tests, in a module the nodes import by name.

Each one reports where and when it ran, so the tests can assert what ran remotely and how much at once.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import joblib
from joblib import Parallel, delayed


def where(x: int, delay: float = 0.0) -> tuple[int, int]:
    """``(x * x, pid)`` after `delay` seconds."""
    if delay:
        time.sleep(delay)
    return x * x, os.getpid()


def span(delay: float) -> tuple[int, float, float]:
    """``(pid, start, end)`` of a `delay`-second sleep (wall-clock times: comparable across processes here)."""
    start = time.time()
    time.sleep(delay)
    return os.getpid(), start, time.time()


def max_overlap(spans: list[tuple[int, float, float]]) -> int:
    """The largest number of spans running at the same instant."""
    events = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


def mark_then_sleep(i: int, directory: str, delay: float) -> int:
    """Leave a file named `i` in `directory` (proof that task `i` started), then sleep; task 0 fails fast."""
    (Path(directory) / str(i)).touch()
    if i == 0:
        time.sleep(0.05)
        raise ValueError("task 0 failed on purpose")
    time.sleep(delay)
    return i


def fail(i: int) -> int:
    raise KeyError(f"missing key {i}")


def inner(i: int) -> tuple[int, int, int]:
    return i, os.getpid(), threading.get_ident()


def nested(n: int) -> tuple[int, str, list[tuple[int, int, int]]]:
    """Runs ``Parallel(n_jobs=-1)`` inside a task: reports the backend it got and where the inner calls ran."""
    backend, _ = joblib.parallel.get_active_backend()
    results = Parallel(n_jobs=-1)(delayed(inner)(i) for i in range(n))
    return os.getpid(), type(backend).__name__, results


def count_filters(filters: list[tuple[object, ...]]) -> tuple[int, int]:
    """What scikit-learn does with the warning filters it pickles into every task: receive them."""
    return len(filters), os.getpid()


def wait_for_file(path: str, i: int, timeout: float = 20.0) -> int:
    """Block until `path` exists (the test's signal), then return `i`."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return i


def mark(i: int, directory: str, delay: float) -> int:
    """Leave a file named `i` in `directory` (proof that task `i` started), then sleep."""
    (Path(directory) / str(i)).touch()
    time.sleep(delay)
    return i


def fail_first_then_sleep(i: int, delay: float) -> int:
    """Task 0 fails at once; the others sleep `delay` seconds."""
    if i == 0:
        time.sleep(0.1)
        raise ValueError("task 0 failed on purpose")
    time.sleep(delay)
    return i


def barrier(i: int, directory: str, parties: int, timeout: float = 15.0) -> int:
    """Wait until `parties` tasks have arrived (files in `directory`): proof that they run at the same time."""
    (Path(directory) / f"arrived-{i}").touch()
    deadline = time.monotonic() + timeout
    while len(list(Path(directory).iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(Path(directory).iterdir()))} of {parties} tasks ran at once")
        time.sleep(0.01)
    return os.getpid()


def nested_by_name(n: int) -> tuple[int, str, list[tuple[int, int, int]]]:
    """``Parallel(backend="skyward")`` inside a task, on a node or in a local worker process that never
    imported the plugin itself: reports where it ran and the backend the name gave."""
    parallel = Parallel(n_jobs=2, backend="skyward")
    results = parallel(delayed(inner)(i) for i in range(n))
    return os.getpid(), type(parallel._backend).__name__, results
