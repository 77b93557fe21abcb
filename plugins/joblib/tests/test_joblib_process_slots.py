"""On process slots a running batch can be stopped: an error in one batch stops its running siblings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from joblib import Parallel, delayed
from joblib_plugin_tasks import barrier, fail_first_then_sleep

import skyward as sky


def test_an_error_stops_the_running_batches_of_the_call(tmp_path: Path) -> None:
    worker = sky.Worker(concurrency=2, executor="process")
    with sky.ComputePool(nodes=2, worker=worker, plugins=[sky.plugins.joblib()]) as pool:
        warm = tmp_path / "warm"
        warm.mkdir()
        # A barrier of four: each slot process holds one task (however long the slots took to spawn).
        slot_pids = set(
            Parallel(n_jobs=-1, batch_size=1)(delayed(barrier)(i, str(warm), 4) for i in range(4))
        )
        assert len(slot_pids) == 4  # one process per slot
        assert not slot_pids & {node.pid for node in pool.nodes}
        with pytest.raises(ValueError, match="task 0 failed"):
            Parallel(n_jobs=-1, batch_size=1)(delayed(fail_first_then_sleep)(i, 20) for i in range(4))
        # The three 20 s batches were stopped on their nodes and their slot processes replaced: the next call
        # gets all four slots at once (a barrier of four), long before the 20 s are up.
        start = time.perf_counter()
        after = tmp_path / "after"
        after.mkdir()
        pids = Parallel(n_jobs=-1, batch_size=1)(delayed(barrier)(i, str(after), 4) for i in range(4))
        assert time.perf_counter() - start < 15
        assert len(set(pids)) == 4
