"""The older docs' API: JoblibPool, sklearn_backend, SkywardBackend registered by hand, re-exported lazily by
`skyward.integrations` from the plugin packages (which say what to install when they are missing)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import joblib
import pytest
from joblib import Parallel, delayed, parallel_config, register_parallel_backend
from joblib.parallel import BACKENDS
from joblib_plugin_tasks import span, where

import skyward as sky
from skyward.integrations import JoblibPool, sklearn_backend
from skyward.integrations.joblib import SkywardBackend


def test_joblib_pool_is_a_compute_pool_with_the_joblib_plugin() -> None:
    with JoblibPool(nodes=2, concurrency=2) as pool:
        assert isinstance(pool, sky.ComputePool)
        assert pool.total_slots == 4
        assert f"joblib=={joblib.__version__}" in pool.image.pip
        results = Parallel(n_jobs=-1)(delayed(where)(i, 0.05) for i in range(12))
        assert [value for value, _ in results] == [i * i for i in range(12)]
        assert {pid for _, pid in results} == {node.pid for node in pool.nodes}


def test_joblib_pool_defaults_run_on_its_one_slot() -> None:
    # nodes=1, concurrency=1: joblib would run a one-worker call here; it must go to the node all the same
    with JoblibPool() as pool:
        assert pool.total_slots == 1
        spans = Parallel(n_jobs=-1)(delayed(span)(0.05) for _ in range(4))
        assert {pid for pid, _, _ in spans} == {pool.nodes[0].pid}


def test_joblib_pool_timeout_is_the_default_parallel_timeout() -> None:
    with JoblibPool(nodes=1, concurrency=2, timeout=0.2):
        with pytest.raises(multiprocessing.TimeoutError):
            Parallel(n_jobs=-1)(delayed(span)(0.6) for _ in range(2))
        # a call that sets its own timeout keeps it
        assert len(Parallel(n_jobs=-1, timeout=5)(delayed(span)(0.4) for _ in range(2))) == 2


@pytest.mark.parametrize(
    "setting",
    [
        {"machine": "m5.xlarge"},
        {"accelerator": "A100"},
        {"cpu": 8},
        {"memory": "32GB"},
        {"allocation": "spot"},
        {"allocation": "on-demand"},
    ],
    ids=lambda setting: "-".join(map(str, setting.items())),
)
def test_settings_the_provider_cannot_honour_are_refused(setting: dict[str, object]) -> None:
    (name,) = setting
    with pytest.raises(ValueError, match=f"{name}=.*cannot be honoured: Local nodes"):
        JoblibPool(nodes=1, **setting)  # type: ignore[arg-type]


def test_sklearn_backend_on_a_plain_pool() -> None:
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        assert not isinstance(
            joblib.parallel.get_active_backend()[0], SkywardBackend
        )  # no plugin: not active
        with sklearn_backend(pool) as backend:
            assert (
                isinstance(backend, SkywardBackend) and backend.pool.pool_id == pool.pool_id
            )  # plugins hold a PoolHandle
            results = Parallel(n_jobs=-1)(delayed(where)(i, 0.05) for i in range(12))
            assert {pid for _, pid in results} == {node.pid for node in pool.nodes}
        assert not isinstance(joblib.parallel.get_active_backend()[0], SkywardBackend)


def test_registering_the_backend_by_hand() -> None:
    previous = BACKENDS.get("skyward")
    try:
        with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
            # as the module docstring of skyward.integrations.joblib shows: joblib calls the factory with
            # `nesting_level=` when the backend is named in `Parallel(backend=...)`
            register_parallel_backend("skyward", lambda **_: SkywardBackend(pool))
            with parallel_config(backend="skyward"):
                results = Parallel(n_jobs=-1)(delayed(where)(i, 0.05) for i in range(12))
            results += Parallel(n_jobs=-1, backend="skyward")(delayed(where)(i, 0.05) for i in range(12))
            assert {pid for _, pid in results} == {node.pid for node in pool.nodes}
            assert os.getpid() not in {pid for _, pid in results}
    finally:
        BACKENDS["skyward"] = previous


def test_the_names_are_the_plugin_packages() -> None:
    import skyward_joblib.pools
    import skyward_sklearn.pools

    import skyward.integrations
    import skyward.integrations.joblib

    assert skyward.integrations.JoblibPool is skyward_joblib.pools.JoblibPool
    assert skyward.integrations.joblib_backend is skyward_joblib.pools.joblib_backend
    assert skyward.integrations.ScikitLearnPool is skyward_sklearn.pools.ScikitLearnPool
    assert skyward.integrations.joblib.sklearn_backend is skyward_sklearn.pools.sklearn_backend
    assert skyward.integrations.joblib.SkywardBackend is SkywardBackend
    with pytest.raises(AttributeError, match="NoSuchPool"):
        skyward.integrations.NoSuchPool  # noqa: B018


def test_integrations_without_the_plugin_packages_say_what_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        for name in ("skyward_joblib", "skyward_sklearn"):
            sys.modules[name] = None  # as if not installed: importing them fails
        import skyward.integrations
        import skyward.integrations.joblib
        for name in ("JoblibPool", "ScikitLearnPool", "sklearn_backend"):
            try:
                exec(f"from skyward.integrations import {name}")
            except ImportError as exc:
                print(exc)
        try:
            from skyward.integrations.joblib import SkywardBackend
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("JoblibPool is in the skyward-joblib package: install it")
    assert "pip install skyward-joblib" in lines[0]
    assert lines[1].startswith("ScikitLearnPool is in the skyward-sklearn package")
    assert lines[2].startswith("sklearn_backend is in the skyward-sklearn package")
    assert lines[3].startswith("SkywardBackend is in the skyward-joblib package")
