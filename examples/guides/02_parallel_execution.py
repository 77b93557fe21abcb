"""Parallel execution: the ways to send calls to a pool, and thread slots versus process slots.

    uv run python examples/guides/02_parallel_execution.py
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/02_parallel_execution.py    # smaller sizes

A call of a ``@sky.compute`` function runs nowhere until it is sent:

- ``call >> pool``  runs it on a free slot, waits, and returns its result (or raises its exception);
- ``call > pool``   runs it on a free slot and returns a ``concurrent.futures.Future`` at once;
- ``sky.gather(*calls) >> pool``  runs the calls in parallel and returns their results in order;
- ``call @ pool``   runs it once on every node (a broadcast) and returns the results in node order.

Each call goes to the least-loaded node that has a free slot. ``sky.Worker(executor=...)`` says what a slot is:
a thread of the node's worker process (the default) or a process of its own.

The nodes are worker processes on this machine (``sky.Local()``). Set SKYWARD_SSH_HOSTS to a comma-separated
list of ``user@host`` entries to run the same code on those machines instead (see the SSH provider page).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import as_completed

import numpy as np

import skyward as sky

SMALL = os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1"


# --8<-- [start:provider]
def provider() -> sky.Local | sky.SSH:
    """Local worker processes by default; the machines in SKYWARD_SSH_HOSTS when it is set."""
    hosts = [h.strip() for h in os.environ.get("SKYWARD_SSH_HOSTS", "").split(",") if h.strip()]
    return sky.SSH(hosts=hosts) if hosts else sky.Local()


# --8<-- [end:provider]


@sky.compute
def where() -> tuple[str, int]:
    """The node a call ran on (skyward sets SKYWARD_NODE there) and the process that ran it."""
    return os.environ["SKYWARD_NODE"], os.getpid()


@sky.compute
def slow_square(x: int, seconds: float) -> tuple[int, str]:
    time.sleep(seconds)
    return x * x, os.environ["SKYWARD_NODE"]


@sky.compute
def divide(a: float, b: float) -> float:
    return a / b


@sky.compute
def count_primes(limit: int) -> tuple[int, int]:
    """Pure-Python CPU work: it holds the GIL the whole time. Returns (primes below limit, pid)."""
    count = 0
    for n in range(2, limit):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            count += 1
    return count, os.getpid()


def operators(pool: sky.ComputePool) -> None:
    # --8<-- [start:operators]
    node, pid = where() >> pool  # run one call and wait for it
    print(f">>      one call ran on {node} (pid {pid}; this client is pid {os.getpid()})")

    future = slow_square(7, 0.1) > pool  # a concurrent.futures.Future, returned at once
    print(f">       future.done() right away: {future.done()}; result: {future.result()}")

    print(f"gather  {sky.gather(*(slow_square(i, 0.05) for i in range(6))) >> pool}")

    print(f"@       one call per node: {where() @ pool}")

    print(f"implicit pool inside the block: {slow_square(3, 0) >> sky}")  # `sky`: the innermost active pool
    # --8<-- [end:operators]


@sky.compute
def center(X: np.ndarray) -> tuple[bool, float, int]:
    """Subtract the mean in place, if `X` may be written; returns (writable, mean after, pid)."""
    writable = bool(X.flags.writeable)
    if writable:
        X -= X.mean()
    return writable, float(X.mean()), os.getpid()


def writable_arguments(pool: sky.ComputePool) -> None:
    # --8<-- [start:writable]
    X = np.arange(200_000, dtype=float)  # 1.6 MB: sent to each node once, by content hash
    shared, _, _ = center(X) >> pool  # the node's copy, shared by its tasks: read-only
    writable, mean, pid = center(sky.writable(X)) >> pool  # a private writable copy for this task
    print(
        f"writable  shared copy writable: {shared}; sky.writable(X): {writable}, mean after centering {mean}"
    )
    print(f"          on pid {pid}; the client's X is unchanged: X[:3] = {X[:3]}")
    # --8<-- [end:writable]


def errors(pool: sky.ComputePool) -> None:
    # --8<-- [start:errors]
    try:
        divide(1, 0) >> pool
    except ZeroDivisionError as exc:  # the remote exception, with its own type
        print(f"errors  {type(exc).__name__} raised on a node: {exc}")
        frame = next(line for line in exc.remote_traceback.splitlines() if ", in divide" in line)
        print(f"        remote traceback:{frame}")
    # --8<-- [end:errors]


def many_calls(pool: sky.ComputePool) -> None:
    # --8<-- [start:many]
    calls = 40 if SMALL else 200
    started = time.perf_counter()
    futures = [slow_square(i, 0.02) > pool for i in range(calls)]  # all sent at once: one per free slot
    total, per_node = 0, Counter()
    for future in as_completed(futures):  # in completion order
        square, node = future.result()
        total += square
        per_node[node] += 1
    elapsed = time.perf_counter() - started
    print(f"many    {calls} calls of 20 ms on {pool.total_slots} slots in {elapsed:.2f}s: {dict(per_node)}")
    # --8<-- [end:many]


# --8<-- [start:executors]
def compare_executors() -> None:
    """The same CPU-bound calls on one node with two thread slots, then with two process slots."""
    limit = 40_000 if SMALL else 80_000
    for executor in ("thread", "process"):
        worker = sky.Worker(concurrency=2, executor=executor)
        with sky.ComputePool(provider=provider(), nodes=1, worker=worker) as pool:
            sky.gather(count_primes(10), count_primes(10)) >> pool  # warm the slots up: not timed
            started = time.perf_counter()
            results = sky.gather(*(count_primes(limit) for _ in range(4))) >> pool
            elapsed = time.perf_counter() - started
            pids = sorted({pid for _, pid in results})
            print(f"{executor:<8}4 x count_primes({limit}) in {elapsed:.2f}s, run by pids {pids}")


# --8<-- [end:executors]


def main() -> None:
    with sky.ComputePool(provider=provider(), nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        print(f"pool of {len(pool.nodes)} nodes, {pool.total_slots} slots: {[n.name for n in pool.nodes]}")
        operators(pool)
        errors(pool)
        writable_arguments(pool)
        many_calls(pool)
    # Thread slots share one process: pure-Python work takes turns on the GIL (numpy, scikit-learn and I/O
    # release it, so threads are the cheap default). Process slots each have a pid and a GIL of their own.
    compare_executors()


if __name__ == "__main__":
    main()
