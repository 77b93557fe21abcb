"""Where one call's time goes: microseconds per stage, client and node, on a real Local pool.

    uv run python benchmarks/profile_call.py                  # 500 sequential no-op calls, 2 nodes x 2 slots
    uv run python benchmarks/profile_call.py --calls 200 --bigargs-mb 50 --json profile.json

Stages of a tiny call (a no-op of this script, by value as a user's script function is) are the spans between
timestamps taken by wrappers around skyward's own functions (`call_probes.py`); they add up to the whole round
trip. `--bigargs-mb` adds a call with a large numpy argument (a scikit-learn `Ridge` fit of X, as in suite.py's
bigargs): the first call uploads X, the later ones find it on the node. Medians over the calls; every figure is
one machine's (both ends on loopback), so the transport's stages are a lower bound for remote nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle

import skyward as sky

sys.path.insert(0, str(Path(__file__).parent))
import call_probes

cloudpickle.register_pickle_by_value(call_probes)  # nodes need not import it

#: (stage, the stamp it starts at, the stamp it ends at), in order; a stage whose stamps are missing is skipped.
STAGES = [
    ("submit (pending call, pool.submit)", "call", "enc_start"),
    ("client encode", "enc_start", "enc_end"),
    ("queue (scheduler, to the I/O loop)", "enc_end", "send"),
    ("queue (scheduler, to the I/O loop)", "enc_end", "upload_start"),
    ("upload (put_blob, all chunks)", "upload_start", "upload_end"),
    ("after upload, to the task's send", "upload_end", "send"),
    ("send (casty+TLS to the node's actor)", "send", "node_in"),
    ("node: to a slot thread", "node_in", "exec_start"),
    ("node decode (rebuild)", "exec_start", "decode_end"),
    ("run (the function)", "decode_end", "ok_start"),
    ("node reply encode", "ok_start", "ok_end"),
    ("node: reply back to its loop", "ok_end", "tell"),
    ("reply transit (casty+TLS back)", "tell", "reply_in"),
    ("client: settle, to the results thread", "reply_in", "resolve_start"),
    ("client decode, future resolved", "resolve_start", "resolve_end"),
    ("caller wakes", "resolve_end", "done"),
]


def noop(x: int) -> int:
    return x


def fit(X: Any, y: Any) -> float:
    from sklearn.linear_model import Ridge

    return float(Ridge(alpha=1.0).fit(X, y).coef_[0])


def spans(stamps: dict[str, int]) -> dict[str, float]:
    """Microseconds per stage of one call; only stages whose two stamps were taken."""
    return {
        name: (stamps[end] - stamps[start]) / 1e3
        for name, start, end in STAGES
        if start in stamps and end in stamps
    }


def profile(pool: sky.ComputePool, send: Callable[[], object], calls: int) -> list[dict[str, int]]:
    """Run `send()` `calls` times, one at a time, probes installed; every call's stamps, client's and node's."""
    records = []
    for _ in range(calls):
        stamps = call_probes.new_call()
        call_probes.stamp("call")
        send()
        call_probes.stamp("done")
        records.append(stamps)
    return merge_node_stamps(pool, records)


def merge_node_stamps(pool: sky.ComputePool, records: list[dict[str, int]]) -> list[dict[str, int]]:
    """Add to each call's client stamps its node's (fetched with one broadcast)."""
    call_probes.new_call()  # the broadcast below is no call of ours: its client stamps go elsewhere
    on_nodes: dict[str, dict[str, int]] = {}
    for node in pool.broadcast(call_probes.node_stamps):
        on_nodes.update(node)
    ours = {id(stamps) for stamps in records}
    for task_id, stamps in call_probes.by_id.items():
        if id(stamps) in ours:
            stamps.update(on_nodes.get(task_id, {}))
    return records


def summary(records: list[dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per stage: median and 90th percentile in µs, over the calls that have it."""
    per_stage: dict[str, list[float]] = {}
    for stamps in records:
        for name, us in spans(stamps).items():
            per_stage.setdefault(name, []).append(us)
        per_stage.setdefault("total (call to result)", []).append((stamps["done"] - stamps["call"]) / 1e3)
    out = {}
    for name, values in per_stage.items():
        values.sort()
        out[name] = {"median_us": statistics.median(values), "p90_us": values[int(0.9 * (len(values) - 1))]}
    return out


def interleaved(
    pool: sky.ComputePool, send: Callable[[], object], calls: int, rounds: int = 5
) -> dict[str, Any]:
    """Probed and bare calls of `send()`, alternating in `rounds` rounds (the machine's load drifts): the probed
    calls' stamps, and the bare calls' round trips in µs (node probes passing through, client probes removed)."""
    records: list[dict[str, int]] = []
    bare: list[float] = []
    per_round = max(1, calls // rounds)
    for _ in range(rounds):
        pool.broadcast(call_probes.enable_node_probes, False)
        for _ in range(per_round):
            started = time.perf_counter_ns()
            send()
            bare.append((time.perf_counter_ns() - started) / 1e3)
        pool.broadcast(call_probes.enable_node_probes, True)
        uninstall = call_probes.install_client_probes()
        try:
            for _ in range(per_round):
                stamps = call_probes.new_call()
                call_probes.stamp("call")
                send()
                call_probes.stamp("done")
                records.append(stamps)
        finally:
            uninstall()
    return {"records": merge_node_stamps(pool, records), "bare_us": bare}


def print_table(title: str, table: dict[str, dict[str, float]], bare_us: float | None = None) -> None:
    total = table["total (call to result)"]["median_us"]
    print(f"\n== {title} ==")
    print(f"{'stage':<42} {'median µs':>11} {'p90 µs':>10} {'share':>7}")
    for name, figures in table.items():
        share = f"{100 * figures['median_us'] / total:6.1f}%"
        print(f"{name:<42} {figures['median_us']:>11.1f} {figures['p90_us']:>10.1f} {share:>7}")
    if bare_us is not None:
        print(f"{'(same call, no probes, alternating: median)':<42} {bare_us:>11.1f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500, help="sequential tiny calls profiled")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--bigargs-mb", type=float, default=0, help="also profile a fit of an X this large")
    parser.add_argument("--bigargs-calls", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    remote_noop = sky.compute(noop)
    with sky.ComputePool(nodes=args.nodes, worker=sky.Worker(concurrency=args.concurrency)) as pool:
        tiny = lambda: remote_noop(1) >> pool
        for _ in range(50):  # connections, caches and the by-value code cache warm
            tiny()
        pids = set(pool.broadcast(call_probes.install_node_probes))
        result["node_pids"] = sorted(pids)
        tiny_runs = interleaved(pool, tiny, args.calls)
        result["tiny"] = summary(tiny_runs["records"])
        result["tiny_uninstrumented_median_us"] = statistics.median(tiny_runs["bare_us"])
        print_table(f"one no-op call, {len(tiny_runs['records'])} sequential calls", result["tiny"],
                    result["tiny_uninstrumented_median_us"])  # fmt: skip
        if args.bigargs_mb:
            uninstall = call_probes.install_client_probes()
            try:
                result["bigargs"] = bigargs(pool, args.bigargs_mb, args.bigargs_calls)
            finally:
                uninstall()
    if os.getpid() in pids:
        raise RuntimeError("profile_call: the nodes ran in this process; the profile would not be a real one")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def bigargs(pool: sky.ComputePool, mb: float, calls: int) -> dict[str, Any]:
    """The first fit of an X of `mb` MB (uploaded) and the later ones (X already on the node)."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((int(mb * 1e6 / 800), 100))
    y = X @ rng.standard_normal(100)
    pool.broadcast(fit, X[:50], y[:50])  # scikit-learn imported on the nodes: not what is profiled
    # Every call goes to node 0: the first uploads X there, the later ones find it.
    pinned = lambda: pool.submit_to(0, fit, X, y).result()
    cold = profile(pool, pinned, 1)
    warm = profile(pool, pinned, calls)
    out = {"x_mb": X.nbytes / 1e6, "first": summary(cold), "later": summary(warm)}
    print_table(f"fit of a {X.nbytes / 1e6:.0f} MB X: the first call (uploads X)", out["first"])
    print_table(f"the same, {calls} later calls (X already on the node)", out["later"])
    return out


if __name__ == "__main__":
    main()
