"""Pool blocks and threads, without a pool held open around the tests: joblib's own objects come back after a
block, whichever thread ends it and in whatever order overlapping blocks end."""

from __future__ import annotations

import threading
import warnings

import joblib
from joblib import parallel_config
from joblib._parallel_backends import LokyBackend
from joblib.parallel import BACKENDS
from skyward_joblib import SkywardBackend
from skyward_joblib.activation import skyward_backend
from test_joblib_threads import in_thread, pids_of

import skyward as sky


def test_every_thread_is_local_again_after_the_block() -> None:
    own_local = joblib.parallel._backend
    with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as pool:
        node_pids = {node.pid for node in pool.nodes}
        assert in_thread(pids_of) == node_pids
    assert joblib.parallel._backend is own_local  # joblib's own thread-local object, exactly
    backend = in_thread(lambda: joblib.parallel.get_active_backend()[0])
    assert type(backend) is LokyBackend
    assert not in_thread(lambda: pids_of(2)) & node_pids


def test_overlapping_blocks_end_in_any_order_from_any_thread() -> None:
    own_local, named = joblib.parallel._backend, BACKENDS["skyward"]
    with sky.ComputePool(nodes=1) as first, sky.ComputePool(nodes=1) as second:
        first_pids, second_pids = {first.nodes[0].pid}, {second.nodes[0].pid}
        first_block = skyward_backend(first)
        second_block = skyward_backend(second)
        first_block.__enter__()
        in_thread(second_block.__enter__)  # entered by another thread
        assert pids_of() == first_pids  # this thread entered `first` itself: its innermost block
        assert in_thread(pids_of) == second_pids  # other threads: the last block entered
        first_block.__exit__(None, None, None)  # ends first, though entered first
        assert pids_of() == second_pids and in_thread(pids_of) == second_pids
        assert joblib.parallel._backend is not own_local
        in_thread(lambda: second_block.__exit__(None, None, None))  # ended by yet another thread
    assert joblib.parallel._backend is own_local and BACKENDS["skyward"] is named
    assert type(joblib.parallel.get_active_backend()[0]) is LokyBackend


def test_a_thread_keeps_its_own_config_across_a_block() -> None:
    """A thread inside its own ``parallel_config(n_jobs=3)`` (no backend) when a block starts: the pool for the
    block with its n_jobs, and its own config back, untouched, by the time the block ends."""
    entered, pool_up, checked, pool_down = (threading.Event() for _ in range(4))
    seen: dict[str, object] = {}

    def body() -> None:
        with parallel_config(n_jobs=3) as own:
            entered.set()
            pool_up.wait(30)
            backend, n_jobs = joblib.parallel.get_active_backend()
            seen["inside"] = (type(backend), n_jobs, pids_of(n_jobs=None))  # type: ignore[arg-type]
            with parallel_config(verbose=0):  # saves what it finds (the pool's view) and sets it back on exit
                pass
            seen["own_back"] = joblib.parallel._backend.wrapped.config is own
            with parallel_config(verbose=0):
                seen["nested_kept_n_jobs"] = joblib.parallel.get_active_backend()[1] == 3
            checked.set()
            pool_down.wait(30)
            seen["after"] = (
                type(joblib.parallel.get_active_backend()[0]),
                joblib.parallel.get_active_backend()[1],
            )
        # as joblib leaves a thread after its first parallel_config: the defaults, nothing of the pool
        seen["nothing_left"] = joblib.parallel._backend.config is joblib.parallel.default_parallel_config

    def without_config() -> bool:
        with parallel_config(verbose=0):  # a thread with no config of its own, inside the block
            pass
        return "config" not in vars(joblib.parallel._backend.wrapped)

    thread = threading.Thread(target=body)
    thread.start()
    assert entered.wait(30)
    with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as pool:
        pool_up.set()
        assert checked.wait(60)
        assert in_thread(without_config)  # joblib set back "no config", not the pool's
        node_pids = {pool.nodes[0].pid}
    pool_down.set()
    thread.join()
    assert seen["inside"] == (SkywardBackend, 3, node_pids)
    assert seen["own_back"] and seen["nested_kept_n_jobs"]
    assert seen["after"] == (LokyBackend, 3), seen
    assert seen["nothing_left"]


def test_a_pool_exited_from_another_thread_restores_everything() -> None:
    own_local, named = joblib.parallel._backend, BACKENDS["skyward"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UnimportableWarning)
        filters_before = list(warnings.filters)
        pool = sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()])
        pool.__enter__()
        try:
            assert in_thread(pids_of) == {pool.nodes[0].pid}
            assert all(entry[2] is not UnimportableWarning for entry in warnings.filters)
        finally:
            in_thread(lambda: pool.__exit__(None, None, None))
        assert joblib.parallel._backend is own_local and BACKENDS["skyward"] is named
        assert all(a is b for a, b in zip(warnings.filters, filters_before, strict=True))
    assert type(in_thread(lambda: joblib.parallel.get_active_backend()[0])) is LokyBackend


class UnimportableWarning(UserWarning):
    """A category no node can import: its module exists only in this process."""


UnimportableWarning.__module__ = "skyward_test_only_module"
