"""Client memory per node entry: what a pool holds for each node, by the file that allocated it (tracemalloc).

    uv run python benchmarks/node_memory.py                 # 1000 in-process nodes, 4 Local (casty) nodes

In-process nodes (`skyward.inprocess`) give the client's own entries (scheduler, pool, node watch, link) at
scale, apart from the simulated agents' memory (their files are listed separately). Local nodes give what a
casty link to a real agent costs on the client (casty's `Client`, TLS material, the provider's process
record), measured on a few nodes, as each is a process of its own.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections import defaultdict

import skyward as sky
from skyward.inprocess import InProcess, VirtualSlots

# Files of the simulated agents (node side) when nodes are in-process; everything else is the client's.
NODE_SIDE = ("skyward/worker/", "skyward/inprocess/virtual.py", "skyward/blobs.py", "concurrent/futures/")


def _by_file(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for stat in after.compare_to(before, "filename"):
        sizes[stat.traceback[0].filename] += stat.size_diff
    return sizes


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/skyward/", "lib/python3"):
        if marker in filename:
            return (
                filename.split(marker, 1)[1]
                if marker != "/skyward/"
                else "skyward/" + filename.split(marker, 1)[1]
            )
    return filename


def measure(provider: object, nodes: int) -> dict[str, int]:
    with sky.ComputePool(provider=provider, nodes=1) as pool:  # type: ignore[arg-type]
        pool.submit(abs, -1).result()  # warm-up: modules imported and caches filled are not per node
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    worker = sky.Worker(concurrency=10)
    with sky.ComputePool(provider=provider, nodes=nodes, worker=worker) as pool:  # type: ignore[arg-type]
        assert pool.submit(abs, -1).result() == 1  # every structure a running pool has, at least once
        time.sleep(0.5)
        gc.collect()
        after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return _by_file(before, after)


def report(title: str, sizes: dict[str, int], nodes: int) -> None:
    node_side = sum(v for k, v in sizes.items() if any(m in k for m in NODE_SIDE))
    client = sum(sizes.values()) - node_side
    print(f"{title}: {client / nodes:,.0f} bytes per node entry on the client ({nodes} nodes)")
    top = sorted(
        ((v, _short(k)) for k, v in sizes.items() if not any(m in k for m in NODE_SIDE)), reverse=True
    )
    for size, name in top[:8]:
        print(f"    {size / nodes:>10,.0f}  {name}")
    if node_side:
        print(f"    (simulated agents, not counted: {node_side / nodes:,.0f} bytes per node)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--local-nodes", type=int, default=4)
    args = parser.parse_args()
    virtual = InProcess(slots=lambda name, n, store: VirtualSlots(n, store, 0.0))
    report("in-process", measure(virtual, args.nodes), args.nodes)
    if args.local_nodes:
        report(
            "Local (casty link)", measure(sky.Local(forward_output=False), args.local_nodes), args.local_nodes
        )


if __name__ == "__main__":
    main()
