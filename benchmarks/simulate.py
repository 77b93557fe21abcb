"""The scale simulation: the real pool, scheduler and wire code driving N simulated nodes in one process.

Each node is the real agent logic (`TaskRunner`) behind an in-process link (`skyward.inprocess`) whose slots
are virtual: a task is held `--task-seconds` on the nodes' event-loop timers, then decoded, run and its reply
encoded for real. Links add `--latency-ms` each way. All nodes share one thread, whose CPU time is read on its
own (`pthread_getcpuclockid`) and subtracted from the process's: what is left is the client's.

    uv run python benchmarks/simulate.py --nodes 1000 --slots 10 --tasks 50000 --task-seconds 5 --latency-ms 1
    simulate: nodes=1000 slots=10 tasks=50000 efficiency=0.975 client_us_per_task=41.2

- efficiency = ideal / wall, where ideal = ceil(tasks / (nodes x slots)) x task_seconds (every slot busy from
  the first submit to the last result) and wall runs from the first `pool.submit` to the last result.
- client_us_per_task = (process CPU - the nodes' thread CPU) over that same span, per task: submitting
  (encoding included), scheduling, the client side of the links, decoding replies and resolving futures.
- ``--lose 0.1``: 10 % of the nodes vanish half-way through the ideal time (their machines gone: asks in
  flight fail, no restart); every task must end with a result or an error, and the line before the last says
  so.
- ``--heartbeat-seconds 20``: after the run, the pool idles that long and the client's CPU is reported per
  node per second (the node watch: heartbeats and the provider's liveness checks).
- ``--by-value``: tasks call a function of ``__main__``, pickled by value with every task (a user script's
  functions are); by default the same function is pickled by reference, as an installed module's is.
- ``--profile FILE``: cProfile of the client threads' work during the run, written to FILE (pstats).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import skyward as sky
from skyward.blobs import BlobStore
from skyward.errors import NodeLost
from skyward.inprocess import InProcess, VirtualSlots


def simulated_task(index: int) -> int:
    """What each task runs on its node once its slot has held it: nothing worth measuring."""
    return index


def _task_function(by_value: bool) -> object:
    """`simulated_task` as the client pickles it: by value (this script is ``__main__``, as a user's is) or by
    reference (as a function of an installed or shipped module is)."""
    if by_value or __name__ != "__main__":
        return simulated_task
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import simulate  # this file as a module: cloudpickle pickles its functions by reference

    return simulate.simulated_task


@dataclass
class Outcome:
    nodes: int
    slots: int
    tasks: int
    task_seconds: float
    wall: float
    client_cpu: float
    node_cpu: float
    results: int
    errors: int
    missing: int
    lost_nodes: int = 0
    heartbeat_us_per_node_s: float | None = None
    by_thread: dict[str, float] | None = None  # CPU seconds of each thread during the run

    @property
    def ideal(self) -> float:
        return math.ceil(self.tasks / (self.nodes * self.slots)) * self.task_seconds

    @property
    def efficiency(self) -> float:
        return self.ideal / self.wall

    @property
    def client_us_per_task(self) -> float:
        return self.client_cpu / self.tasks * 1e6

    def line(self) -> str:
        return (
            f"simulate: nodes={self.nodes} slots={self.slots} tasks={self.tasks} "
            f"efficiency={self.efficiency:.3f} client_us_per_task={self.client_us_per_task:.1f}"
        )


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread, by name (threads of one name summed)."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # ended meanwhile
            continue
        name = thread.name.split("_")[0]
        seconds[name] = seconds.get(name, 0.0) + used
    return seconds


class _Counter:
    """Counts finished futures with a done callback: waiting costs the client nothing per task."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.results = self.errors = 0
        self.last_done = 0.0
        self._lock = threading.Lock()
        self.all_done = threading.Event()

    def __call__(self, future: Future[object]) -> None:
        failed = future.cancelled() or future.exception() is not None
        with self._lock:
            if failed:
                self.errors += 1
            else:
                self.results += 1
            if self.results + self.errors == self.expected:
                self.last_done = time.perf_counter()
                self.all_done.set()


def simulate(
    nodes: int,
    slots: int,
    tasks: int,
    task_seconds: float,
    latency_ms: float = 0.0,
    *,
    lose: float = 0.0,
    heartbeat_seconds: float = 0.0,
    profile: str | None = None,
    by_value: bool = False,
    seed: int = 0,
) -> Outcome:
    """Run `tasks` tasks on `nodes` simulated nodes of `slots` virtual slots; see the module docstring."""

    def virtual(name: str, concurrency: int, store: BlobStore) -> VirtualSlots:
        return VirtualSlots(concurrency, store, task_seconds)

    provider = InProcess(latency=latency_ms / 1000, slots=virtual)
    worker = sky.Worker(concurrency=slots)
    ideal = math.ceil(tasks / (nodes * slots)) * task_seconds
    lost = sorted(random.Random(seed).sample(range(nodes), int(nodes * lose))) if lose else []
    with sky.ComputePool(provider=provider, nodes=nodes, worker=worker) as pool:
        deployment = provider.launched[-1]
        counter = _Counter(tasks)
        killer = threading.Timer(ideal / 2, lambda: [deployment.lose(i) for i in lost]) if lost else None
        profiler = _start_profile(profile)
        threads0 = thread_cpu()
        cpu0, node0, start = time.process_time(), deployment.node_cpu_seconds(), time.perf_counter()
        if killer is not None:
            killer.start()
        fn = _task_function(by_value)
        futures = [pool.submit(fn, i) for i in range(tasks)]
        for future in futures:
            future.add_done_callback(counter)
        counter.all_done.wait(timeout=ideal * 4 + 120)
        end = counter.last_done or time.perf_counter()
        cpu1, node1 = time.process_time(), deployment.node_cpu_seconds()
        threads1 = thread_cpu()
        _stop_profile(profiler, profile)
        if killer is not None:
            killer.join()
        outcome = Outcome(
            nodes, slots, tasks, task_seconds, end - start, (cpu1 - cpu0) - (node1 - node0), node1 - node0,
            counter.results, counter.errors, sum(not f.done() for f in futures), len(lost),
        )  # fmt: skip
        outcome.by_thread = {name: used - threads0.get(name, 0.0) for name, used in threads1.items()}
        errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
        if errors and not all(isinstance(e, NodeLost) for e in errors):
            raise RuntimeError(f"a simulated task failed: {errors[0]!r}") from errors[0]
        if heartbeat_seconds:
            outcome.heartbeat_us_per_node_s = _idle_cost(deployment, nodes - len(lost), heartbeat_seconds)
    return outcome


def _idle_cost(deployment: object, live: int, seconds: float) -> float:
    """Client CPU per live node per second while the pool idles: its node watch is all the client does."""
    cpu0, node0 = time.process_time(), deployment.node_cpu_seconds()  # type: ignore[attr-defined]
    time.sleep(seconds)
    cpu1, node1 = time.process_time(), deployment.node_cpu_seconds()  # type: ignore[attr-defined]
    return ((cpu1 - cpu0) - (node1 - node0)) / live / seconds * 1e6


def _start_profile(path: str | None) -> object:
    if path is None:
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()  # since Python 3.12 (sys.monitoring) it sees every thread: the nodes' one too
    return profiler


def _stop_profile(profiler: object, path: str | None) -> None:
    if profiler is None or path is None:
        return
    profiler.disable()  # type: ignore[attr-defined]
    profiler.dump_stats(path)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> Outcome:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--task-seconds", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--lose", type=float, default=0.0, help="fraction of the nodes lost half-way")
    parser.add_argument("--heartbeat-seconds", type=float, default=0.0, help="idle time to measure the watch")
    parser.add_argument("--profile", help="write a cProfile of the run to this file")
    parser.add_argument("--by-value", action="store_true", help="tasks call a __main__ function (by value)")
    args = parser.parse_args(argv)
    outcome = simulate(
        args.nodes, args.slots, args.tasks, args.task_seconds, args.latency_ms,
        lose=args.lose, heartbeat_seconds=args.heartbeat_seconds, profile=args.profile,
        by_value=args.by_value,
    )  # fmt: skip
    print(
        f"detail: wall={outcome.wall:.2f}s ideal={outcome.ideal:.2f}s client_cpu={outcome.client_cpu:.2f}s "
        f"node_cpu={outcome.node_cpu:.2f}s"
    )
    if outcome.by_thread:
        print("cpu by thread: " + ", ".join(f"{k}={v:.2f}s" for k, v in sorted(outcome.by_thread.items())))
    if args.lose:
        print(
            f"node loss: lost_nodes={outcome.lost_nodes} results={outcome.results} errors={outcome.errors} "
            f"missing={outcome.missing}"
        )
    if outcome.heartbeat_us_per_node_s is not None:
        print(
            f"heartbeat: nodes={outcome.nodes - outcome.lost_nodes} "
            f"client_us_per_node_per_s={outcome.heartbeat_us_per_node_s:.2f}"
        )
    print(outcome.line())
    return outcome


if __name__ == "__main__":
    main()
