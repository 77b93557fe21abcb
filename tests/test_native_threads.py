"""Native thread pools on nodes are sized to each slot's share of the machine, unless the user chose."""

from __future__ import annotations

import os

import pytest

import skyward as sky
from skyward.worker.native_threads import (
    THREAD_VARIABLES,
    available_cpus,
    limit_native_threads,
    threads_per_slot,
)


@pytest.mark.parametrize(
    ("cpus", "nodes", "concurrency", "threads"),
    [(16, 1, 1, 16), (16, 1, 4, 4), (16, 2, 4, 2), (16, 4, 8, 1), (2, 2, 2, 1), (3, 1, 2, 1), (8, 0, 0, 8)],
)
def test_threads_per_slot(cpus: int, nodes: int, concurrency: int, threads: int) -> None:
    assert threads_per_slot(cpus, nodes, concurrency) == threads


def test_a_variable_already_set_is_kept() -> None:
    environ = {"OMP_NUM_THREADS": "7"}
    chosen = limit_native_threads(1, 1, environ)
    assert environ["OMP_NUM_THREADS"] == "7" and "OMP_NUM_THREADS" not in chosen
    assert set(chosen) == set(THREAD_VARIABLES) - {"OMP_NUM_THREADS"}
    assert {environ[name] for name in chosen} == {str(available_cpus())}


@pytest.fixture
def unset_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local nodes inherit this process's environment: none of the variables set here."""
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def blas_threads() -> dict[str, object]:
    """What the node's numpy really got: its BLAS pool size (threadpoolctl), the variables, and the pid."""
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl inspects)
    from threadpoolctl import threadpool_info

    pools = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return {
        "pid": os.getpid(),
        "blas": pools,
        "env": {name: os.environ.get(name) for name in THREAD_VARIABLES},
    }


@pytest.mark.parametrize(("nodes", "concurrency"), [(1, 1), (2, 1), (1, 2)])
@pytest.mark.usefixtures("unset_thread_variables")
def test_nodes_size_blas_to_their_share_of_this_machine(nodes: int, concurrency: int) -> None:
    expected = max(1, available_cpus() // nodes // concurrency)
    with sky.ComputePool(nodes=nodes, worker=sky.Worker(concurrency=concurrency)) as pool:
        seen = pool.broadcast(blas_threads)
    for node in seen:
        assert node["pid"] != os.getpid()
        assert node["env"] == dict.fromkeys(THREAD_VARIABLES, str(expected))
        assert node["blas"] and set(node["blas"]) == {expected}  # type: ignore[arg-type]


@pytest.mark.usefixtures("unset_thread_variables")
def test_the_images_setting_wins() -> None:
    if available_cpus() < 2:
        pytest.skip("one CPU: the default is already 1 thread, the image's choice would not show")
    image = sky.Image(env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    with sky.ComputePool(nodes=1, image=image) as pool:
        (seen,) = pool.broadcast(blas_threads)
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "1"  # type: ignore[index]
    assert seen["env"]["MKL_NUM_THREADS"] == str(available_cpus())  # type: ignore[index]
    assert set(seen["blas"]) == {1}  # type: ignore[arg-type]


@pytest.mark.usefixtures("unset_thread_variables")
def test_process_slots_inherit_the_limit() -> None:
    with sky.ComputePool(nodes=1, worker=sky.Worker(concurrency=2, executor="process")) as pool:
        node_pid = pool.nodes[0].pid
        seen = pool.submit(blas_threads).result(timeout=60)
    assert seen["pid"] not in (os.getpid(), node_pid)  # a slot process, not the agent
    assert set(seen["blas"]) == {max(1, available_cpus() // 2)}  # type: ignore[arg-type]
