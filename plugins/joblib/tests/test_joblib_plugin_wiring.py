"""The joblib plugin through the pool's hooks: entry-point resolution, both entry names, the node image, the
backend bound to its own pool, and what is restored on exit."""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Callable

import joblib
import pytest
import skyward_joblib
from joblib import Parallel, delayed
from joblib.parallel import BACKENDS
from joblib_plugin_tasks import count_filters, where
from skyward_joblib import JoblibPlugin, SkywardBackend

import skyward as sky


def test_sky_plugins_joblib_resolves_through_the_entry_point() -> None:
    entry = sky.plugins.available()["joblib"]
    assert entry.group == "skyward.plugins" and entry.value == "skyward_joblib:plugin"
    assert sky.plugins.joblib is skyward_joblib.plugin
    plugin = sky.plugins.joblib()
    assert isinstance(plugin, JoblibPlugin)
    assert plugin.version == joblib.__version__


@pytest.mark.parametrize("entry", [sky.ComputePool, sky.Compute], ids=["ComputePool", "Compute"])
def test_parallel_runs_on_the_nodes_under_either_entry_name(entry: Callable[..., sky.ComputePool]) -> None:
    backend_before = joblib.parallel.get_active_backend()[0]
    factory_before = BACKENDS["skyward"]
    with entry(nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]) as pool:
        assert f"joblib=={joblib.__version__}" in pool.image.pip  # pinned to the client's version
        results = Parallel(n_jobs=-1)(delayed(where)(i, 0.05) for i in range(16))
        assert [value for value, _ in results] == [i * i for i in range(16)]
        pids = {pid for _, pid in results}
        assert pids == {node.pid for node in pool.nodes}  # every node, only worker processes
        assert os.getpid() not in pids
    assert type(joblib.parallel.get_active_backend()[0]) is type(backend_before)
    assert BACKENDS["skyward"] is factory_before


def test_a_version_the_local_nodes_lack_is_refused() -> None:
    # Local installs nothing: the pin reaches the image, and the provider refuses what it cannot satisfy.
    with pytest.raises(sky.ProvisionError, match=r"joblib==0\.0\.1"):
        with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib(version="0.0.1")]):
            pass
    with pytest.raises(ValueError, match="exact version"):
        sky.plugins.joblib(version="latest please")


def test_each_block_binds_the_backend_to_its_own_pool() -> None:
    with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as outer:
        outer_pids = {node.pid for node in outer.nodes}
        outer_factory = BACKENDS["skyward"]
        with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as inner:
            inner_pids = {node.pid for node in inner.nodes}
            assert {pid for _, pid in Parallel(n_jobs=-1)(delayed(where)(i) for i in range(4))} == inner_pids
            # by name too: "skyward" is the inner pool's for the inner block
            by_name = Parallel(n_jobs=-1, backend="skyward")(delayed(where)(i) for i in range(4))
            assert {pid for _, pid in by_name} == inner_pids
        # the inner pool is gone; the outer block's backend and factory are back, not "the last pool"
        assert BACKENDS["skyward"] is outer_factory
        backend = joblib.parallel.get_active_backend()[0]
        # plugins get a narrow handle of the pool (PoolHandle), so compare by pool id
        assert isinstance(backend, SkywardBackend) and backend.pool.pool_id == outer.pool_id
        assert {pid for _, pid in Parallel(n_jobs=-1)(delayed(where)(i) for i in range(4))} == outer_pids


class ClientOnlyWarning(UserWarning):
    """A warning category the nodes cannot import, like one from pytest or a cloud SDK the nodes lack.

    Local nodes share this machine's packages (and this test directory), so the category is published under a
    module name that exists only in this process.
    """


def test_foreign_warning_filters_are_set_aside_and_restored_exactly() -> None:
    client_only = types.ModuleType("skyward_client_only_warnings")
    ClientOnlyWarning.__module__ = client_only.__name__
    client_only.ClientOnlyWarning = ClientOnlyWarning  # type: ignore[attr-defined]
    sys.modules[client_only.__name__] = client_only
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ClientOnlyWarning)
            warnings.filterwarnings("ignore", message="stdlib filter kept", category=DeprecationWarning)
            before = list(warnings.filters)
            with sky.ComputePool(
                nodes=1, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]
            ) as pool:
                inside = list(warnings.filters)
                assert all(entry[2] is not ClientOnlyWarning for entry in inside)
                assert any(entry[2] is DeprecationWarning for entry in inside)  # stdlib categories stay
                # what scikit-learn does: send the live filter list with every task
                results = Parallel(n_jobs=-1)(delayed(count_filters)(warnings.filters) for _ in range(4))
                assert {pid for _, pid in results} == {node.pid for node in pool.nodes}
                warnings.filterwarnings("ignore", category=UserWarning)  # added inside: gone on exit
            assert warnings.filters == before
            assert all(a is b for a, b in zip(warnings.filters, before, strict=True))
    finally:
        del sys.modules[client_only.__name__]
        ClientOnlyWarning.__module__ = __name__
