"""joblib's ``max_nbytes`` and ``mmap_mode`` decide which arrays tasks may write into, as with loky.

loky memory-maps arrays larger than ``max_nbytes`` (default 1 MB) with ``mmap_mode`` (default ``"r"``: read
only) and pickles smaller ones, which arrive as writable copies. ``max_nbytes=None`` or ``mmap_mode=None``
turns sharing off; ``"c"``, ``"r+"`` and ``"w+"`` map arrays writable.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from joblib import Parallel, delayed

import skyward as sky


def write_first(X: np.ndarray) -> tuple[bool, float, int]:
    """Whether `X` is writable; if it is, what its first item was before this task added 1 to it."""
    if not X.flags.writeable:
        return False, float(X[0]), os.getpid()
    before = float(X[0])
    X[0] += 1.0
    return True, before, os.getpid()


def run(X: np.ndarray, tasks: int = 8, **parallel: Any) -> list[tuple[bool, float, int]]:
    return Parallel(n_jobs=-1, batch_size=1, **parallel)(delayed(write_first)(X) for _ in range(tasks))


@pytest.mark.parametrize(
    "settings",
    [
        {"max_nbytes": None},
        {"mmap_mode": None},
        {"mmap_mode": "c"},
        {"mmap_mode": "r+"},
        {"mmap_mode": "w+"},
        {"max_nbytes": "4M"},  # the 2 MiB array is under it: pickled by loky, so writable
    ],
    ids=lambda settings: ",".join(f"{k}={v}" for k, v in settings.items()),
)
def test_tasks_get_private_writable_copies(
    joblib_pool: sky.ComputePool, worker_pids: set[int], settings: dict[str, Any]
) -> None:
    X = np.zeros(1 << 18)  # 2 MiB: a blob, and above joblib's default max_nbytes
    sent = joblib_pool.stats.blobs_sent
    results = run(X, **settings)
    assert all(writable for writable, _, _ in results), results
    assert {before for _, before, _ in results} == {0.0}, "a task saw another task's write"
    assert {pid for _, _, pid in results} <= worker_pids
    assert not X.any(), "a task's write reached the client"
    assert joblib_pool.stats.blobs_sent - sent <= len(worker_pids), "sent more than once per node"


@pytest.mark.parametrize(
    "settings", [{}, {"max_nbytes": "1M", "mmap_mode": "r"}], ids=["defaults", "explicit"]
)
def test_arrays_above_max_nbytes_are_shared_read_only(
    joblib_pool: sky.ComputePool, worker_pids: set[int], settings: dict[str, Any]
) -> None:
    results = run(np.zeros(1 << 18), **settings)
    assert not any(writable for writable, _, _ in results)
    assert {pid for _, _, pid in results} <= worker_pids


def test_arrays_under_max_nbytes_are_writable(joblib_pool: sky.ComputePool, worker_pids: set[int]) -> None:
    # 512 KiB: large enough to travel once per node, under joblib's default max_nbytes of 1 MiB.
    X = np.zeros(1 << 16)
    sent = joblib_pool.stats.blobs_sent
    results = run(X)
    assert all(writable for writable, _, _ in results)
    assert {before for _, before, _ in results} == {0.0}
    assert {pid for _, _, pid in results} <= worker_pids
    assert 0 < joblib_pool.stats.blobs_sent - sent <= len(worker_pids)
