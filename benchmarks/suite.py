"""skyward beside the joblib backends a user would pick instead, measured in the same run.

    uv run --group bench python benchmarks/suite.py                    # every workload, every runner
    uv run --group bench python benchmarks/suite.py --quick            # small sizes, a couple of minutes
    uv run --group bench python benchmarks/suite.py --workloads tiny latency --runners skyward dask
    uv run --group bench python benchmarks/suite.py --json run.json --plot charts/   # one SVG per workload
    uv run --group bench python benchmarks/suite.py --from-json run.json --plot charts/   # charts of a past run

Runners: skyward (Local provider, 2 nodes), joblib's loky and threading backends, Dask's joblib backend on a
`LocalCluster` (2 workers), Ray's joblib backend. Each (runner, workload) pair runs in a fresh subprocess so that
no runner's state or warm caches help another. Figures are printed, never asserted: on a shared 2-core machine
compare the ratios, which are measured minutes apart, not the absolute values.

Workloads (the targets are in issue 6):
  efficiency  T tasks of sleep(S) on W slots; efficiency = (T / W * S) / elapsed
  tiny        Parallel(n_jobs=-1) of N no-op calls; tasks/s
  bigargs     GridSearchCV(cv=5) over 16 candidates with an X of ~50 MB; wall time (and bytes sent, skyward)
  latency     one call's round trip, p50 and p99
  startup     from creating the pool/cluster to the first result
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

RUNNERS = ("skyward", "loky", "threading", "dask", "ray")
WORKLOADS = ("efficiency", "tiny", "bigargs", "latency", "startup")
NODES = 2


def noop(x: int) -> int:
    return x


def nap(seconds: float) -> None:
    time.sleep(seconds)


# --- runner contexts: each yields a `call(fn, *args)` for single round trips; joblib is configured inside -----


@contextlib.contextmanager
def runner_context(name: str, slots_per_node: int, sklearn: bool = False) -> Iterator[Callable[..., Any]]:
    """Enter the runner with NODES x slots_per_node slots; joblib's default backend is the runner's.

    `sklearn`: the workload is scikit-learn's (skyward then uses its scikit-learn plugin, as a user would).
    """
    from joblib import parallel_config

    total = NODES * slots_per_node
    if name == "skyward":
        import skyward as sky

        worker = sky.Worker(concurrency=slots_per_node)
        plugin = sky.plugins.sklearn() if sklearn else sky.plugins.joblib()
        with sky.ComputePool(nodes=NODES, worker=worker, plugins=[plugin]) as pool:
            remote = sky.compute(noop)
            yield (
                lambda fn, *args: (
                    (sky.compute(fn)(*args) >> pool) if fn is not noop else (remote(*args) >> pool)
                )
            )
    elif name == "loky":
        from joblib.executor import get_memmapping_executor  # joblib's own: what Parallel reuses

        with parallel_config(backend="loky", n_jobs=total):
            executor = get_memmapping_executor(total)
            yield lambda fn, *args: executor.submit(fn, *args).result()
    elif name == "threading":
        from concurrent.futures import ThreadPoolExecutor

        with parallel_config(backend="threading", n_jobs=total), ThreadPoolExecutor(total) as executor:
            yield lambda fn, *args: executor.submit(fn, *args).result()
    elif name == "dask":
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=NODES, threads_per_worker=slots_per_node, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
            parallel_config(backend="dask", n_jobs=total),
        ):
            yield lambda fn, *args: client.submit(fn, *args, pure=False).result()
    elif name == "ray":
        import ray
        from ray.util.joblib import register_ray

        ray.init(num_cpus=total, include_dashboard=False, log_to_driver=False, configure_logging=False)
        register_ray()
        try:
            cache: dict[Callable[..., Any], Any] = {}

            def call(fn: Callable[..., Any], *args: Any) -> Any:
                remote = cache.setdefault(fn, ray.remote(fn))
                return ray.get(remote.remote(*args))

            with parallel_config(backend="ray", n_jobs=total):
                yield call
        finally:
            ray.shutdown()
    else:
        raise ValueError(f"unknown runner {name!r}")


# --- workloads: each returns a dict of figures ----------------------------------------------------------------


def warm(slots: int) -> None:
    """One small joblib call on every slot: worker processes started, joblib imported there, connections up."""
    from joblib import Parallel, delayed

    Parallel(n_jobs=slots)(delayed(nap)(0.05) for _ in range(2 * slots))


def efficiency(runner: str, quick: bool) -> dict[str, float]:
    from joblib import Parallel, delayed

    tasks, seconds, slots = (200, 0.2, 20) if quick else (1000, 0.5, 100)
    with runner_context(runner, slots // NODES) as call:
        call(noop, 0)
        warm(slots)
        started = time.perf_counter()
        Parallel(n_jobs=slots)(delayed(nap)(seconds) for _ in range(tasks))
        elapsed = time.perf_counter() - started
    ideal = tasks / slots * seconds
    return {"elapsed_s": elapsed, "ideal_s": ideal, "efficiency_pct": 100 * ideal / elapsed}


def tiny(runner: str, quick: bool) -> dict[str, float]:
    from joblib import Parallel, delayed

    calls = 5000 if quick else 20000
    with runner_context(runner, 1) as call:
        call(noop, 0)
        warm(NODES)
        started = time.perf_counter()
        results = Parallel(n_jobs=-1)(delayed(noop)(i) for i in range(calls))
        elapsed = time.perf_counter() - started
    assert results == list(range(calls))
    return {"tasks_per_s": calls / elapsed, "elapsed_s": elapsed}


def bigargs(runner: str, quick: bool) -> dict[str, float]:
    import numpy as np
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV

    rows = 6_250 if quick else 62_500  # x 100 float64 features: ~5 MB / ~50 MB
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 100))
    y = X @ rng.standard_normal(100) + rng.standard_normal(rows)
    figures: dict[str, float] = {"x_mb": X.nbytes / 1e6}
    with runner_context(runner, 2, sklearn=True) as call:
        call(noop, 0)
        warm(2 * NODES)
        # scikit-learn imported in every worker (seconds each on a small machine): what is timed below is moving
        # the data and fitting, not imports.
        GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=2, n_jobs=-1).fit(X[:200], y[:200])
        started = time.perf_counter()
        search = GridSearchCV(Ridge(), {"alpha": np.logspace(-3, 3, 16)}, cv=5, n_jobs=-1).fit(X, y)
        figures["elapsed_s"] = time.perf_counter() - started
        if runner == "skyward":
            import skyward as sky

            stats = sky.current_pool().stats
            figures["sent_mb"] = (stats.task_bytes + stats.blob_bytes) / 1e6
    figures["best_alpha"] = float(search.best_params_["alpha"])
    return figures


def latency(runner: str, quick: bool) -> dict[str, float]:
    rounds = 300 if quick else 1000
    with runner_context(runner, 1) as call:
        for _ in range(50):
            call(noop, 1)
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            call(noop, 1)
            samples.append(time.perf_counter() - started)
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2] * 1e3, "p99_ms": samples[int(len(samples) * 0.99)] * 1e3}


def startup(runner: str, quick: bool) -> dict[str, float]:
    # Imports are not start-up: a user's program pays them anyway, and they hit disk caches unevenly.
    for module in {
        "skyward": ["skyward", "skyward_joblib"],
        "dask": ["distributed"],
        "ray": ["ray", "ray.util.joblib"],
        "loky": ["joblib.executor"],
        "threading": [],
    }[runner]:
        __import__(module)
    started = time.perf_counter()
    with runner_context(runner, 1) as call:
        call(noop, 1)
        elapsed = time.perf_counter() - started
    return {"startup_s": elapsed}


# --- orchestration ----------------------------------------------------------------------------------------------

COLUMNS = {
    "efficiency": [("efficiency_pct", "efficiency %", True), ("elapsed_s", "elapsed s", False)],
    "tiny": [("tasks_per_s", "tasks/s", True)],
    "bigargs": [("elapsed_s", "wall s", False), ("sent_mb", "MB sent", False)],
    "latency": [("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False)],
    "startup": [("startup_s", "start-up s", False)],
}


def run_child(runner: str, workload: str, quick: bool, timeout: float) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--child", runner, workload] + (["--quick"] if quick else [])
    # A session of its own: whatever the runner started (Ray's raylet and workers, Dask's nannies) is killed
    # with it, so a timed-out runner cannot slow down the next one.
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(child.pid)
        child.communicate()
        return f"timed out after {timeout:.0f}s"
    _kill_session(child.pid)
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
    return f"failed: {tail[0][:100]}"


def _kill_session(session: int) -> None:
    """SIGKILL every process of the session that `session` leads.

    Not only its process group: Ray puts its workers in process groups of their own.
    """
    members = {session}
    with contextlib.suppress(FileNotFoundError):  # /proc: Linux; elsewhere the leader's group only
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = (
                            stat.read().rsplit(")", 1)[1].split()
                        )  # after "pid (comm)": state ppid pgrp sid
                    if int(fields[3]) == session:
                        members.add(int(entry))
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)


def print_table(workload: str, results: dict[str, dict[str, float] | str]) -> None:
    ours = results.get("skyward")
    print(f"\n== {workload} ==")
    header = f"{'runner':<11}"
    for _, label, _ in COLUMNS[workload]:
        header += f" {label:>14} {'vs skyward':>11}"
    print(header)
    for runner, figures in results.items():
        if isinstance(figures, str):
            print(f"{runner:<11} {figures}")
            continue
        line = f"{runner:<11}"
        for key, _, _ in COLUMNS[workload]:
            value = figures.get(key)
            if value is None:
                line += f" {'-':>14} {'':>11}"
                continue
            ratio = ""
            if isinstance(ours, dict) and ours.get(key):
                ratio = f"{value / ours[key]:.2f}x"
            line += f" {value:>14.3f} {ratio:>11}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per (runner, workload)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--plot", metavar="DIR", help="write one chart per workload (SVG) into DIR")
    parser.add_argument(
        "--from-json", metavar="FILE", help="run nothing: print (and plot) the figures of FILE"
    )
    parser.add_argument("--note", help="the line under each chart (default: cores, sizes and date, or FILE)")
    parser.add_argument("--child", nargs=2, metavar=("RUNNER", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runner, workload = args.child
        figures = globals()[workload](runner, args.quick)
        print("RESULT " + json.dumps(figures), flush=True)
        return
    if args.from_json:
        with open(args.from_json) as source:
            everything = json.load(source)
        for workload, results in everything.items():
            print_table(workload, results)
        note = f"figures of {os.path.basename(args.from_json)}"
    else:
        note = (
            f"{os.cpu_count()} cores; {'quick' if args.quick else 'full'} sizes; {time.strftime('%Y-%m-%d')}"
        )
        print(f"{note}; runners: {', '.join(args.runners)}")
        everything = {}
        for workload in args.workloads:
            results = {
                runner: run_child(runner, workload, args.quick, args.timeout) for runner in args.runners
            }
            everything[workload] = results
            print_table(workload, results)
    if args.json and not args.from_json:
        with open(args.json, "w") as out:
            json.dump(everything, out, indent=2)
    if args.plot:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from suite_plot import plot  # beside this script; imports matplotlib (the bench group)

        for path in plot(everything, COLUMNS, args.plot, args.note or note):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
