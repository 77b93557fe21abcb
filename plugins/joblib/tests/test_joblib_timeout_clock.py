"""joblib's `timeout=` counts from when a batch reaches a node, not while it waits on the client."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from joblib import Parallel, delayed

import skyward as sky


def run_for(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_queued_batches_do_not_time_out_while_they_wait() -> None:
    # One slot, nothing queued on the node: three of the four batches wait on the client, the last for ~1.8 s.
    with sky.ComputePool(
        nodes=1, worker=sky.Worker(concurrency=1), prefetch=0, plugins=[sky.plugins.joblib()]
    ) as pool:
        Parallel(n_jobs=-1)(delayed(run_for)(0) for _ in range(2))  # the node has imported joblib
        started = time.perf_counter()
        pids = list(
            Parallel(n_jobs=-1, timeout=1.0, batch_size=1, return_as="generator_unordered")(
                delayed(run_for)(0.6) for _ in range(4)
            )
        )
        elapsed = time.perf_counter() - started
        assert pids == [pool.nodes[0].pid] * 4
    assert elapsed > 2.0  # the batches really queued longer than the timeout


def test_a_batch_that_runs_too_long_on_its_node_still_times_out() -> None:
    with sky.ComputePool(
        nodes=1, worker=sky.Worker(concurrency=1), prefetch=0, plugins=[sky.plugins.joblib()]
    ):
        started = time.perf_counter()
        with pytest.raises(multiprocessing.TimeoutError):
            list(
                Parallel(n_jobs=-1, timeout=0.5, return_as="generator_unordered")(
                    delayed(run_for)(3.0) for _ in range(2)
                )
            )
        assert time.perf_counter() - started < 2.5


def test_a_batch_retried_after_node_loss_gets_a_fresh_clock() -> None:
    import signal
    import threading

    # restart_nodes=False: the killed node stays lost (a restarted one would take the retried batch back).
    with sky.ComputePool(
        nodes=2, worker=sky.Worker(concurrency=1), plugins=[sky.plugins.joblib()], restart_nodes=False
    ) as pool:
        Parallel(n_jobs=-1)(delayed(run_for)(0) for _ in range(4))  # both nodes have imported joblib
        first_node = pool.nodes[0].pid  # the head batch goes to the least-loaded node: the first
        threading.Timer(0.4, os.kill, (first_node, signal.SIGKILL)).start()
        started = time.perf_counter()
        # The head batch dies with its node at 0.4 s and runs again once the other slot is free (at 1.0 s),
        # until 2.0 s: 2 s after it was first sent, 1 s after it was sent again.
        pids = Parallel(n_jobs=2, timeout=1.6, batch_size=1)(delayed(run_for)(1.0) for _ in range(2))
        assert time.perf_counter() - started > 1.8
        survivor = pool.nodes[0].pid
        assert survivor != first_node and pids == [survivor, survivor]
