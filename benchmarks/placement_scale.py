"""Client CPU per task of the scheduler's decisions, at 10 and 1,000 nodes (no network, no node work).

    uv run python benchmarks/placement_scale.py [--tasks 50000] [--slots 10]

The real `Scheduler` places tasks and takes completions; only its hand-off to the I/O loop is replaced by a
list, so what is timed is submission, placement, completion and re-placement (including work stealing at the
tail). Tasks complete in random order while the nodes are kept full (slots plus ``prefetch`` per node), as in a
long run. Flat per-task cost from 10 to 1,000 nodes is the point; figures are reported, never asserted. Run it
with ``PYTHONPATH`` pointing at an older checkout to compare (it adapts to the old scheduler's internals).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from skyward.ioloop import shared_loop
from skyward.payload import EncodedTask
from skyward.scheduler import NodeSlots, Scheduler


class _NoLink:
    async def cancel(self, task_ids: tuple[str, ...], *, stop_running: bool = True) -> int:
        return 0


def per_task_us(nodes: int, slots: int, tasks: int, seed: int = 0) -> float:
    rng = random.Random(seed)
    slots_list = [NodeSlots(i, f"n{i}", slots, _NoLink(), prefetch=slots) for i in range(nodes)]  # type: ignore[arg-type]
    scheduler = Scheduler(slots_list, shared_loop())
    sent: list[Any] = []
    complete = _hook(scheduler, sent)
    encoded = EncodedTask(b"x" * 100)
    in_flight: list[Any] = []
    started = time.process_time()
    for _ in range(tasks):
        scheduler.submit(encoded)
        in_flight += sent
        sent.clear()
        while len(in_flight) >= nodes * slots * 2:  # every slot and queue taken: one ends, at random
            index = rng.randrange(len(in_flight))
            in_flight[index], in_flight[-1] = in_flight[-1], in_flight[index]
            complete(in_flight.pop())
            in_flight += sent
            sent.clear()
    while in_flight:
        complete(in_flight.pop())
        in_flight += sent
        sent.clear()
    elapsed = time.process_time() - started
    scheduler.close()
    return elapsed / tasks * 1e6


def _hook(scheduler: Scheduler, sent: list[Any]) -> Any:
    """Capture what the scheduler sends; return a function that completes one sent task."""
    if hasattr(scheduler, "placement"):  # this checkout: placement + dispatch
        scheduler._go = lambda placed: sent.extend(placed[0])  # type: ignore[method-assign]

        def complete(task: Any) -> None:
            node = scheduler.nodes[task.node]
            with scheduler._lock:
                if node.running.get(task.id) is not task:
                    return
                scheduler.placement.unplace(task, node)
                scheduler.placement.release(task)
                placed = scheduler._place_locked((node,))
            sent.extend(placed[0])

        return complete
    scheduler._send = lambda tasks: sent.extend(tasks)  # type: ignore[attr-defined]  # the older scheduler
    scheduler._io = _NoIo()  # type: ignore[attr-defined]

    def complete_old(task: Any) -> None:
        node = scheduler.nodes[task.node]
        with scheduler._lock:  # type: ignore[attr-defined]
            if node.running.get(task.id) is not task:
                return
            node.running.pop(task.id)
            if task.stealing:
                task.stealing = False
                scheduler._steals_pending -= 1  # type: ignore[attr-defined]
            to_send = scheduler._assign_locked()  # type: ignore[attr-defined]
        sent.extend(to_send)

    return complete_old


class _NoIo:
    def run(self, coro: Any) -> None:
        coro.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--slots", type=int, default=10)
    args = parser.parse_args()
    figures = {nodes: per_task_us(nodes, args.slots, args.tasks) for nodes in (10, 100, 1000)}
    for nodes, us in figures.items():
        print(f"placement: nodes={nodes} slots={args.slots} tasks={args.tasks} client_us_per_task={us:.1f}")
    print(f"placement: ratio 1000/10 nodes = {figures[1000] / figures[10]:.2f}")


if __name__ == "__main__":
    main()
