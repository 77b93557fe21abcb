"""SkywardBackend under joblib's Parallel, on real local nodes: where work runs, how much at once, batching,
generators, timeouts, nesting, errors and cancellation, progress output."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
import time
import types
from pathlib import Path

import joblib
import pytest
from joblib import Parallel, delayed
from joblib_plugin_tasks import fail, mark, mark_then_sleep, max_overlap, nested, span, wait_for_file, where
from skyward_joblib import SkywardBackend

import skyward as sky

# The module's pool (conftest): 2 nodes x 4 thread slots = 8 slots, the joblib plugin active for every test.
SLOTS = 8


def test_n_jobs_minus_one_runs_on_every_slot_of_every_node(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    assert joblib_pool.total_slots == SLOTS
    results = Parallel(n_jobs=-1)(delayed(where)(i, 0.05) for i in range(32))
    assert [value for value, _ in results] == [i * i for i in range(32)]
    pids = {pid for _, pid in results}
    assert pids == worker_pids  # every node took part
    assert os.getpid() not in pids
    # and all eight slots at once
    spans = Parallel(n_jobs=-1, batch_size=1)(delayed(span)(0.5) for _ in range(SLOTS))
    assert max_overlap(spans) == SLOTS


def test_effective_n_jobs_follows_joblib_convention(joblib_pool: sky.ComputePool) -> None:
    backend, _ = joblib.parallel.get_active_backend()
    assert (
        isinstance(backend, SkywardBackend) and backend.pool.pool_id == joblib_pool.pool_id
    )  # plugins hold a PoolHandle
    assert joblib.effective_n_jobs(-1) == SLOTS
    assert joblib.effective_n_jobs(-2) == SLOTS - 1
    # joblib would run a call it believes has one worker in this process: one slot is reported as two
    assert joblib.effective_n_jobs(-SLOTS) == 2
    assert joblib.effective_n_jobs(-100) == 2
    assert joblib.effective_n_jobs(1) == 1  # explicit n_jobs=1 runs here, sequentially, as joblib documents
    assert joblib.effective_n_jobs(3) == 3
    assert joblib.effective_n_jobs(20) == 20  # more than the slots: honoured, the rest queues on the pool
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)


@pytest.mark.parametrize("pre_dispatch", ["2 * n_jobs", "all"])
def test_n_jobs_3_never_runs_more_than_3_batches(joblib_pool: sky.ComputePool, pre_dispatch: str) -> None:
    # 8 slots are free, and with pre_dispatch="all" joblib hands every batch over at once.
    spans = Parallel(n_jobs=3, batch_size=1, pre_dispatch=pre_dispatch)(
        delayed(span)(0.25) for _ in range(12)
    )
    assert len(spans) == 12
    assert max_overlap(spans) == 3


def test_one_slot_left_still_runs_on_the_pool(joblib_pool: sky.ComputePool, worker_pids: set[int]) -> None:
    spans = Parallel(n_jobs=-SLOTS, batch_size=1)(delayed(span)(0.1) for _ in range(4))
    assert {pid for pid, _, _ in spans} <= worker_pids
    assert max_overlap(spans) == 1


def test_n_jobs_above_the_slots_is_honoured(
    joblib_pool: sky.ComputePool, capfd: pytest.CaptureFixture[str]
) -> None:
    results = Parallel(n_jobs=20, verbose=1)(delayed(where)(i) for i in range(40))
    assert [value for value, _ in results] == [i * i for i in range(40)]
    assert "Using backend SkywardBackend with 20 concurrent workers" in capfd.readouterr().err


def test_many_tiny_tasks_are_batched(joblib_pool: sky.ComputePool) -> None:
    parallel = Parallel(n_jobs=-1)
    start = time.perf_counter()
    results = parallel(delayed(abs)(-i) for i in range(10_000))
    elapsed = time.perf_counter() - start
    assert results == list(range(10_000))
    # one batch per task would be 10,000 round trips; auto-batching grows batches towards 0.2 s of work
    assert parallel.n_dispatched_batches < 1_000
    assert elapsed < 10


def test_slow_tasks_are_not_lumped_together(joblib_pool: sky.ComputePool) -> None:
    # Long enough that joblib would lump tasks together if they looked faster than its 0.2 s batch target.
    parallel = Parallel(n_jobs=-1)
    spans = parallel(delayed(span)(0.25) for _ in range(6 * SLOTS))
    assert parallel.n_dispatched_batches == 6 * SLOTS  # each 0.25 s task is a batch of its own
    assert max_overlap(spans) == SLOTS  # so every slot is busy


def test_batch_size_is_honoured(joblib_pool: sky.ComputePool) -> None:
    # pre_dispatch="all": joblib slices the whole input at once, so every batch has exactly batch_size tasks
    parallel = Parallel(n_jobs=-1, batch_size=5, pre_dispatch="all")
    results = parallel(delayed(where)(i) for i in range(40))
    assert parallel.n_dispatched_batches == 8
    # a batch runs in one task: each run of 5 consecutive items shares one worker process
    pids = [pid for _, pid in results]
    assert all(len(set(pids[i : i + 5])) == 1 for i in range(0, 40, 5))


def test_pre_dispatch_limits_what_is_taken_from_the_iterator(
    joblib_pool: sky.ComputePool, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    taken: list[int] = []

    def tasks():  # type: ignore[no-untyped-def]
        for i in range(10):
            taken.append(i)
            yield delayed(wait_for_file)(str(gate), i)

    output = Parallel(n_jobs=2, batch_size=1, pre_dispatch=3, return_as="generator")(tasks())
    time.sleep(0.3)  # nothing can finish before the gate opens, so nothing more is taken
    assert len(taken) == 3
    gate.touch()
    assert list(output) == list(range(10))
    assert len(taken) == 10


def test_return_as_generator_yields_in_order(joblib_pool: sky.ComputePool) -> None:
    output = Parallel(n_jobs=-1, return_as="generator")(
        delayed(where)(i, 0.3 if i == 0 else 0) for i in range(16)
    )
    assert isinstance(output, types.GeneratorType)
    assert [value for value, _ in output] == [i * i for i in range(16)]


def test_return_as_generator_unordered_yields_as_completed(joblib_pool: sky.ComputePool) -> None:
    delays = [0.6] + [0.0] * 15  # the first task finishes last
    output = Parallel(n_jobs=-1, batch_size=1, return_as="generator_unordered")(
        delayed(where)(i, d) for i, d in enumerate(delays)
    )
    values = [value for value, _ in output]
    assert sorted(values) == [i * i for i in range(16)]
    assert values[-1] == 0


def test_closing_a_generator_early_cancels_the_rest(joblib_pool: sky.ComputePool, tmp_path: Path) -> None:
    # pre_dispatch="all": all 64 batches are handed to the backend at once; 8 run, the rest wait
    output = Parallel(n_jobs=-1, batch_size=1, pre_dispatch="all", return_as="generator")(
        delayed(mark)(i, str(tmp_path), 0.25) for i in range(64)
    )
    assert next(output) == 0
    with pytest.warns(UserWarning, match="have been cancelled"):  # joblib's own report
        output.close()  # the caller lost interest: what has not started must not run
    time.sleep(1.0)  # anything not cancelled would be running by now (about 40 tasks more)
    assert len(list(tmp_path.iterdir())) <= 3 * SLOTS


def test_timeout_raises_and_the_pool_recovers(joblib_pool: sky.ComputePool) -> None:
    start = time.perf_counter()
    with pytest.raises(multiprocessing.TimeoutError):
        Parallel(n_jobs=-1, timeout=0.2)(delayed(span)(1.0) for _ in range(4))
    assert time.perf_counter() - start < 0.9  # raised at the timeout, not when the tasks ended
    # The abandoned tasks hold their slots until they end (0.8 s more); then all eight slots work again.
    spans = Parallel(n_jobs=-1, batch_size=1)(delayed(span)(1.0) for _ in range(SLOTS))
    assert max_overlap(spans) == SLOTS


def test_nested_parallel_runs_sequentially_on_the_node(
    joblib_pool: sky.ComputePool, worker_pids: set[int]
) -> None:
    outer = Parallel(n_jobs=-1, batch_size=1)(delayed(nested)(4) for _ in range(4))
    for pid, backend_name, inner in outer:
        assert pid in worker_pids
        assert backend_name == "NestedBackend"  # joblib's SequentialBackend, registering "skyward" there
        assert [i for i, _, _ in inner] == [0, 1, 2, 3]
        assert {inner_pid for _, inner_pid, _ in inner} == {pid}  # on the same node, no recursive dispatch
        assert len({thread for _, _, thread in inner}) == 1  # in the task's own thread: sequentially
    nested_backend, n_jobs = SkywardBackend(joblib_pool).get_nested_backend()
    assert len(pickle.dumps((nested_backend, n_jobs))) < 300  # pickled into every batch: keep it tiny


def test_task_error_keeps_its_type_and_remote_traceback(joblib_pool: sky.ComputePool) -> None:
    with pytest.raises(KeyError, match="missing key 3") as excinfo:
        Parallel(n_jobs=-1)(delayed(fail if i == 3 else where)(i) for i in range(8))
    remote_traceback = excinfo.value.remote_traceback  # type: ignore[attr-defined]
    assert "in fail" in remote_traceback and "joblib_plugin_tasks.py" in remote_traceback
    assert any("Remote traceback" in note for note in excinfo.value.__notes__)


@pytest.mark.parametrize("n_jobs", [4, 40], ids=["held-in-the-backend", "queued-on-the-pool"])
def test_an_error_cancels_the_rest_and_frees_every_slot(
    joblib_pool: sky.ComputePool, tmp_path: Path, n_jobs: int
) -> None:
    # 40 tasks of 0.4 s; task 0 fails after 0.05 s. With n_jobs=4 the rest waits in the backend, with n_jobs=40
    # it waits in the pool's queue. Either way it must be dropped, not run.
    with pytest.raises(ValueError, match="task 0 failed"):
        Parallel(n_jobs=n_jobs, batch_size=1, pre_dispatch="all")(
            delayed(mark_then_sleep)(i, str(tmp_path), 0.4) for i in range(40)
        )
    error_at = time.time()
    # The next call: only the tasks already running when the error came back (at most 0.4 s left) are ahead of
    # it, so all of its 0.5 s tasks run together within about 0.4 s. (The 31 queued tasks, had they run, would
    # have held the slots for about 1.6 s.)
    spans = Parallel(n_jobs=-1, batch_size=1)(delayed(span)(0.5) for _ in range(SLOTS))
    assert max_overlap(spans) == SLOTS
    assert max(start for _, start, _ in spans) - error_at < 1.2
    time.sleep(0.5)  # anything that was not cancelled would have started by now
    started = len(list(tmp_path.iterdir()))
    assert started <= min(n_jobs, SLOTS) + 3


def test_verbose_reports_progress(joblib_pool: sky.ComputePool, capfd: pytest.CaptureFixture[str]) -> None:
    Parallel(n_jobs=-1, verbose=10, batch_size=1)(delayed(where)(i) for i in range(16))
    err = capfd.readouterr().err
    assert "Using backend SkywardBackend with 8 concurrent workers." in err
    assert "Done  16 out of  16" in err


def test_callbacks_never_run_on_the_io_loop(joblib_pool: sky.ComputePool) -> None:
    seen: list[str] = []
    backend, _ = joblib.parallel.get_active_backend()
    original = backend.retrieve_result_callback

    def recording(out):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(out)

    backend.retrieve_result_callback = recording  # type: ignore[method-assign]
    try:
        Parallel(n_jobs=-1)(delayed(where)(i) for i in range(20))
    finally:
        del backend.retrieve_result_callback
    assert seen and "skyward-io" not in seen
