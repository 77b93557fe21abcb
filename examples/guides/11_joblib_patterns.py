"""The joblib patterns people use every day, unchanged under the skyward backend.

    uv run python examples/guides/11_joblib_patterns.py
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/11_joblib_patterns.py    # smaller sizes

1. a ``joblib.Memory``-cached function called inside the tasks: the second pass reads the cache;
2. a nested ``Parallel`` inside a task: it runs sequentially on the task's node;
3. ``verbose=`` progress, printed here (on stderr) as batches come back from the nodes;
4. ``return_as="generator"`` and ``"generator_unordered"``: results consumed while the rest still run.

Nothing below is skyward-specific except the pool's ``with`` line: inside the block, joblib's active backend is
the pool's, and ``n_jobs=-1`` is every slot of it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from collections import Counter

from joblib import Memory, Parallel, delayed

import skyward as sky

SMALL = os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1"
ITEMS = 16 if SMALL else 64
COMPUTE_SECONDS = 0.05 if SMALL else 0.2


def where() -> str:
    """The node this runs on (skyward sets SKYWARD_NODE there), or "client"."""
    return os.environ.get("SKYWARD_NODE", "client")


# --- 1. a Memory-cached function called inside tasks ----------------------------------------------------------

# --8<-- [start:memory]
# Local nodes share this machine's disk, so they share one cache directory. On SSH or cloud nodes the path is
# each node's own: a node computes an item once, then reads its own copy.
CACHE_DIR = tempfile.mkdtemp(prefix="skyward-guide-memory-")
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)
memory = Memory(CACHE_DIR, verbose=0)


@memory.cache
def expensive_features(item: int) -> list[float]:
    """Slow to compute, quick to load once cached."""
    time.sleep(COMPUTE_SECONDS)
    return [item * 0.5, item**0.5, float(item % 7)]


def score(item: int) -> tuple[float, str]:
    """A task: calls the cached function, wherever it runs."""
    return sum(expensive_features(item)), where()


def cached_passes() -> None:
    for label in ("first pass (computes)", "second pass (cache hits)"):
        started = time.perf_counter()
        results = Parallel(n_jobs=-1)(delayed(score)(item) for item in range(ITEMS))
        nodes = Counter(node for _, node in results)
        print(f"memory   {label}: {time.perf_counter() - started:.2f}s on {dict(nodes)}")


# --8<-- [end:memory]


# --- 2. nested Parallel ---------------------------------------------------------------------------------------


# --8<-- [start:nested]
def inner(item: int, part: int) -> tuple[int, str, int]:
    return item * 10 + part, where(), os.getpid()


def outer(item: int) -> tuple[list[int], set[tuple[str, int]], tuple[str, int]]:
    """A task that runs its own Parallel: on a node that one runs sequentially, in the task's own slot."""
    parts = Parallel(n_jobs=4)(delayed(inner)(item, part) for part in range(3))
    values = [value for value, _, _ in parts]
    ran_in = {(node, pid) for _, node, pid in parts}
    return values, ran_in, (where(), os.getpid())


def nested() -> None:
    for values, ran_in, outer_ran_in in Parallel(n_jobs=-1)(delayed(outer)(item) for item in range(4)):
        same = "same process" if ran_in == {outer_ran_in} else f"elsewhere: {ran_in}"
        print(f"nested   outer on {outer_ran_in[0]} pid {outer_ran_in[1]}; inner {values} in the {same}")


# --8<-- [end:nested]


# --- 3. verbose progress --------------------------------------------------------------------------------------


def slow_identity(item: int, seconds: float) -> int:
    time.sleep(seconds)
    return item


# --8<-- [start:verbose]
def progress() -> None:
    # joblib prints "[Parallel(n_jobs=-1)]: Done  N tasks | elapsed: ..." to stderr as batches come back.
    results = Parallel(n_jobs=-1, verbose=10)(delayed(slow_identity)(i, 0.02) for i in range(ITEMS))
    print(f"verbose  {len(results)} results")


# --8<-- [end:verbose]


# --- 4. generators ----------------------------------------------------------------------------------------------


def timed_square(item: int, seconds: float) -> tuple[int, int, str]:
    time.sleep(seconds)
    return item, item * item, where()


# --8<-- [start:generators]
def generators() -> None:
    # In order: each result as soon as it and those before it are done; nothing is kept in a list.
    running_total = 0
    for _, square, _ in Parallel(n_jobs=-1, return_as="generator")(
        delayed(timed_square)(i, 0.01) for i in range(ITEMS)
    ):
        running_total += square
    print(f"generator  sum of squares streamed in order: {running_total}")

    # In completion order: a task that takes longer does not hold back the ones after it.
    durations = [0.3 if i == 0 else 0.01 for i in range(8)]  # item 0 is the slow one
    order = [
        item
        for item, _, _ in Parallel(n_jobs=-1, return_as="generator_unordered")(
            delayed(timed_square)(i, seconds) for i, seconds in enumerate(durations)
        )
    ]
    print(f"generator_unordered  completion order: {order} (item 0 slept longest)")


# --8<-- [end:generators]


def main() -> None:
    # --8<-- [start:main]
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2), plugins=[sky.plugins.joblib()]) as pool:
        # Inside the block joblib's backend is the pool's: n_jobs=-1 means its 4 slots, on 2 worker processes.
        print(f"pool: {[node.name for node in pool.nodes]}; this client is pid {os.getpid()}")
        Parallel(n_jobs=-1)(delayed(where)() for _ in range(pool.total_slots))  # nodes import joblib: untimed
        cached_passes()
        nested()
        progress()
        generators()
    # --8<-- [end:main]


if __name__ == "__main__":
    main()
