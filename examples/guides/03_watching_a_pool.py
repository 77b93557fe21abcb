"""Watching a pool: skyward's log records, the progress of a long call, and what a lost node looks like.

    uv run python examples/guides/03_watching_a_pool.py
    SKYWARD_EXAMPLE_SMALL=1 uv run python examples/guides/03_watching_a_pool.py    # smaller sizes

Everything skyward says goes through `logging`, under named loggers (``skyward.scheduler``, ``skyward.recovery``,
``skyward.ssh``, ``skyward.aws``, ``skyward.slurm``, ``skyward.transport``, ...); a node that goes is one WARNING
with the reason. Progress (node bootstraps, long calls) goes to stderr: a live display in a terminal, plain lines
elsewhere, none with the provider's ``quiet=True``.

The nodes are worker processes on this machine (``sky.Local()``): the guide kills one of them to show the warning.
"""

from __future__ import annotations

import logging
import os
import signal
import time

import skyward as sky

SMALL = os.environ.get("SKYWARD_EXAMPLE_SMALL") == "1"

# --8<-- [start:logging]
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("skyward.transport").setLevel(logging.WARNING)  # the transport's membership chatter
# --8<-- [end:logging]


def slow_square(x: int) -> tuple[int, int]:
    time.sleep(0.02)
    return x * x, os.getpid()


def main() -> None:
    calls = 100 if SMALL else 400
    print(f"client pid {os.getpid()}")
    # --8<-- [start:progress]
    with sky.ComputePool(nodes=2, worker=sky.Worker(concurrency=2)) as pool:
        # progress=True: a bar in a terminal, a line per tenth of the tasks elsewhere (on stderr). Unset, a bar
        # appears by itself in a terminal once a call has run a second; nothing elsewhere.
        results = list(pool.map(slow_square, range(calls), progress=True))
        pids = sorted({pid for _, pid in results})
        print(f"map: {len(results)} results, sum {sum(x for x, _ in results)}, from pids {pids}")
        # --8<-- [end:progress]
        # --8<-- [start:lost]
        victim = pool.nodes[0]
        os.kill(victim.pid, signal.SIGKILL)  # what an out-of-memory kill looks like from here
        # WARNING skyward.scheduler: node ...-node-0 is down: its worker process died (killed by signal 9
        # (SIGKILL)); restarting it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until it is back, a fresh process: INFO skyward.recovery
            if pool.total_slots == 4 and victim.pid not in {node.pid for node in pool.nodes}:
                break
            time.sleep(0.1)
        again = {pid for _, pid in pool.map(slow_square, range(40))}
        print(f"after the restart: {pool.total_slots} slots, pids {sorted(again)} (killed: {victim.pid})")
        # --8<-- [end:lost]


if __name__ == "__main__":
    main()
