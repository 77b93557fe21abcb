"""The threadlimits plugin in a pool: what each node's tasks see.

Install the package once (it registers its entry point), then run this file:

    uv pip install -e examples/plugin_example
    uv run python examples/plugin_example/demo.py
"""

from __future__ import annotations

import os

import skyward as sky


@sky.compute
def thread_settings() -> tuple[str, int, str | None, int | None]:
    """On a node: its name, this process, the OpenMP limit it sees, and the threads numpy's BLAS really uses."""
    try:
        import numpy  # noqa: F401  (loads the BLAS library threadpoolctl reports on)
        from threadpoolctl import threadpool_info  # comes with scikit-learn

        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    except ImportError:
        blas = []
    return os.environ["SKYWARD_NODE"], os.getpid(), os.environ.get("OMP_NUM_THREADS"), max(blas, default=None)


def main() -> None:
    plugin = sky.plugins.threadlimits(threads=1)  # resolved through the `skyward.plugins` entry point
    print(f"plugin: {plugin!r}; client pid {os.getpid()}")
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), plugins=[plugin]) as pool:
        for node, pid, omp, blas in thread_settings() @ pool:
            print(f"{node} (pid {pid}): OMP_NUM_THREADS={omp}, BLAS threads in use: {blas}")


if __name__ == "__main__":
    main()
