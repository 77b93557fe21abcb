"""The skyward backend outside an active pool: a clear error, never a silent local run."""

from __future__ import annotations

import joblib
import pytest
from joblib import Parallel, delayed, parallel_config
from joblib_plugin_tasks import where
from skyward_joblib import NOT_CONFIGURED, SkywardBackend

import skyward as sky

MESSAGE = "skyward backend not configured: use it inside a ComputePool block"


def test_the_message_is_the_documented_one() -> None:
    assert NOT_CONFIGURED == MESSAGE


def test_backend_by_name_outside_every_pool() -> None:
    with parallel_config(backend="skyward"), pytest.raises(sky.NoActivePool, match=MESSAGE):
        Parallel(n_jobs=2)(delayed(where)(i) for i in range(4))


def test_backend_instance_outside_every_pool() -> None:
    with pytest.raises(sky.NoActivePool, match=MESSAGE):
        Parallel(n_jobs=-1, backend=SkywardBackend())(delayed(where)(i) for i in range(4))


def test_backend_of_a_finished_pool() -> None:
    with sky.ComputePool(nodes=1, plugins=[sky.plugins.joblib()]) as pool:
        backend, _ = joblib.parallel.get_active_backend()
        assert (
            isinstance(backend, SkywardBackend) and backend.pool.pool_id == pool.pool_id
        )  # plugins hold a PoolHandle
    # the block restored joblib's previous backend
    assert not isinstance(joblib.parallel.get_active_backend()[0], SkywardBackend)
    with pytest.raises(sky.NoActivePool, match=MESSAGE):
        Parallel(n_jobs=2, backend=backend)(delayed(where)(i) for i in range(4))
    with pytest.raises(sky.NoActivePool, match=MESSAGE):
        backend.effective_n_jobs(-1)
