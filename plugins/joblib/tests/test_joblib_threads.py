"""A pool block covers every thread of the process: ``Parallel`` from a `ThreadPoolExecutor` or a
`threading.Thread` runs on the nodes, explicit per-call choices stay local, and everything is joblib's own again
after the block, whichever thread ends it and in whatever order overlapping blocks end."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import joblib
import pytest
from joblib import Parallel, delayed, parallel_config
from joblib._parallel_backends import ThreadingBackend
from joblib_plugin_tasks import nested_by_name, where
from skyward_joblib import SkywardBackend

import skyward as sky


def in_thread(fn: Callable[[], Any]) -> Any:
    """`fn()` run in a fresh `threading.Thread`; its result or its exception."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller)
            outcome["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def pids_of(n_jobs: int = -1, **kwargs: Any) -> set[int]:
    return {pid for _, pid in Parallel(n_jobs=n_jobs, **kwargs)(delayed(where)(i, 0.02) for i in range(12))}


def on_nodes(pids: set[int], worker_pids: set[int]) -> bool:
    """Ran, and only in the nodes' worker processes (not here, not in loky's workers)."""
    return bool(pids) and pids <= worker_pids


def test_parallel_from_other_threads_runs_on_the_nodes(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    with ThreadPoolExecutor(3) as executor:
        from_executor = [executor.submit(pids_of) for _ in range(3)]  # three Parallel calls at once
        assert all(on_nodes(future.result(), worker_pids) for future in from_executor)
    assert on_nodes(in_thread(pids_of), worker_pids)
    assert os.getpid() not in worker_pids


def test_explicit_choices_in_other_threads_are_kept(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    loky_pids = in_thread(lambda: pids_of(2, backend="loky"))
    assert not loky_pids & worker_pids and os.getpid() not in loky_pids  # loky's own workers
    assert in_thread(lambda: pids_of(1)) == {os.getpid()}  # n_jobs=1: here, as with every backend

    def own_config() -> tuple[type, set[int]]:
        with parallel_config(backend="threading"):
            return type(joblib.parallel.get_active_backend()[0]), pids_of(2)

    assert in_thread(own_config) == (ThreadingBackend, {os.getpid()})


def test_a_thread_config_without_a_backend_gets_the_pool_and_keeps_its_settings(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    def body() -> tuple[Any, ...]:
        with parallel_config(
            n_jobs=3, verbose=0
        ):  # set inside the block: joblib copies the pool's backend in
            backend, n_jobs = joblib.parallel.get_active_backend()
            return backend, n_jobs, pids_of(n_jobs=None)  # type: ignore[arg-type]

    backend, n_jobs, ran = in_thread(body)
    assert (
        isinstance(backend, SkywardBackend) and backend.pool.pool_id == joblib_pool.pool_id
    )  # plugins hold a PoolHandle
    assert n_jobs == 3 and on_nodes(ran, worker_pids)


def test_skyward_by_name_inside_a_task_runs_in_place_on_the_node(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    outer = Parallel(n_jobs=-1, batch_size=1)(delayed(nested_by_name)(3) for _ in range(4))
    for pid, backend_name, inner in outer:
        assert pid in worker_pids and backend_name == "SequentialBackend"
        assert [i for i, _, _ in inner] == [0, 1, 2] and {p for _, p, _ in inner} == {pid}
    # a plain task (no joblib batch around it) too: the plugin preloads itself on the nodes
    pid, backend_name, inner = sky.compute(nested_by_name)(2) >> joblib_pool
    assert pid in worker_pids and backend_name == "SequentialBackend" and {p for _, p, _ in inner} == {pid}


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
@pytest.mark.parametrize("parent", ["threading", "multiprocessing", "loky"])
def test_skyward_by_name_inside_a_local_backend_resolves(
    joblib_pool: sky.ComputePool, worker_pids: set[int], parent: str
) -> None:
    # A loky worker is a fresh interpreter that never imports skyward_joblib: the skyward_joblib_names.pth hook
    # registers the name there when joblib is imported.
    outer = Parallel(n_jobs=2, backend=parent)(delayed(nested_by_name)(2) for _ in range(2))
    for pid, backend_name, inner in outer:
        if parent == "threading":  # a thread of this process: the pool is right here
            assert pid == os.getpid() and backend_name == "SkywardBackend"
            assert {p for _, p, _ in inner} <= worker_pids
        else:  # a worker process: the pool's connections are not there, so it runs in place
            assert pid != os.getpid() and pid not in worker_pids and backend_name == "SequentialBackend"
            assert {p for _, p, _ in inner} == {pid}
