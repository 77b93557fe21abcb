"""joblib concurrency: how ``Parallel(n_jobs=-1)`` throughput grows with nodes x concurrency.

    uv run python examples/guides/10_joblib_concurrency.py                      # ~20 s on a laptop
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/10_joblib_concurrency.py   # a few seconds
    uv run python examples/guides/10_joblib_concurrency.py --tasks 2000 --duration 0.5 --configs 2x25,4x25

Each task sleeps ``duration`` seconds: a stand-in for I/O, or for work that releases the GIL (numpy,
scikit-learn). For every ``NODESxCONCURRENCY`` configuration it starts a pool with the joblib plugin, runs the
same unchanged joblib code on it, and prints a table: effective workers (what ``n_jobs=-1`` became), total time,
throughput, the ideal time and the efficiency (ideal / total). The ideal time is the shortest any scheduler can
finish in: whole rounds of ``duration``, ceil(tasks / workers) of them. (The seeds' formula, tasks x duration /
workers, is the same when the tasks divide evenly; 200 tasks on 32 slots take 7 rounds, 0.70 s, not 0.625 s.)

The same sizes can come from the environment: SKYWARD_JOBLIB_TASKS, SKYWARD_JOBLIB_DURATION,
SKYWARD_JOBLIB_CONFIGS (e.g. "1x4,2x4"); command-line flags win.

The nodes here are worker processes on this machine (``sky.Local()``). On AWS the code is the same, only the
provider and the sizes change:

    with sky.ComputePool(
        provider=sky.AWS(),                      # EC2 instances instead of local processes
        nodes=10,
        worker=sky.Worker(concurrency=10),       # 100 slots
        plugins=[sky.plugins.joblib()],
    ):
        results = Parallel(n_jobs=-1)(delayed(slow_task)(i, 0.5) for i in range(2000))
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass

import joblib
from joblib import Parallel, delayed

import skyward as sky


def slow_task(i: int, duration: float) -> int:
    """Any plain function works with joblib: no decorator. Returns the pid that ran it."""
    time.sleep(duration)
    return os.getpid()


@dataclass(frozen=True)
class Config:
    nodes: int
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> Config:
        nodes, _, concurrency = text.strip().partition("x")
        return cls(int(nodes), int(concurrency))


@dataclass(frozen=True)
class Row:
    tasks: int
    config: Config
    workers: int
    seconds: float
    duration: float

    @property
    def ideal(self) -> float:
        return math.ceil(self.tasks / self.workers) * self.duration  # whole rounds: no slot runs half a task

    def cells(self) -> list[str]:
        return [
            str(self.tasks),
            str(self.config.nodes),
            str(self.config.concurrency),
            str(self.workers),
            f"{self.seconds:.2f}s",
            f"{self.tasks / self.seconds:.1f} tasks/s",
            f"{self.ideal:.2f}s",
            f"{self.ideal / self.seconds:.0%}",
        ]


HEADER = [
    "Tasks",
    "Nodes",
    "Concurrency",
    "Effective workers",
    "Total time",
    "Throughput",
    "Ideal time",
    "Efficiency",
]


def run(tasks: int, duration: float, config: Config) -> Row:
    with sky.ComputePool(
        nodes=config.nodes, worker=sky.Worker(concurrency=config.concurrency), plugins=[sky.plugins.joblib()]
    ) as pool:
        workers = joblib.effective_n_jobs(-1)  # n_jobs=-1 inside the block: every slot of the pool
        # The first task on a fresh node imports joblib there: keep that out of the measurement.
        Parallel(n_jobs=-1)(delayed(slow_task)(i, 0) for i in range(workers))
        start = time.perf_counter()
        pids = Parallel(n_jobs=-1)(delayed(slow_task)(i, duration) for i in range(tasks))
        seconds = time.perf_counter() - start
        node_pids = {node.pid for node in pool.nodes}
        if not set(pids) <= node_pids:  # the point of the exercise: nothing ran on this machine's client
            raise RuntimeError(f"tasks ran outside the pool: {set(pids) - node_pids}")
    return Row(tasks, config, workers, seconds, duration)


def print_table(rows: list[Row]) -> None:
    table = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    for index, line in enumerate(table):
        print(" | ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def arguments() -> argparse.Namespace:
    small = os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1"
    defaults = {
        "tasks": os.environ.get("SKYWARD_JOBLIB_TASKS", "24" if small else "200"),
        "duration": os.environ.get("SKYWARD_JOBLIB_DURATION", "0.05" if small else "0.1"),
        "configs": os.environ.get("SKYWARD_JOBLIB_CONFIGS", "1x2,2x2" if small else "1x4,2x4,2x8,4x8"),
    }
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=int(defaults["tasks"]), help="tasks per configuration")
    parser.add_argument(
        "--duration", type=float, default=float(defaults["duration"]), help="seconds per task"
    )
    parser.add_argument(
        "--configs", default=defaults["configs"], help="comma-separated NODESxCONCURRENCY, e.g. 1x4,2x4,4x8"
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    configs = [Config.parse(text) for text in args.configs.split(",")]
    print(f"{args.tasks} tasks of {args.duration}s each, on local nodes\n")
    rows = [run(args.tasks, args.duration, config) for config in configs]
    print_table(rows)


if __name__ == "__main__":
    main()
