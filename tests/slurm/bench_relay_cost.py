"""CPU the node relays spend per task vs the agents, on the Slurm lab (2 nodes x 2 slots, 4000 tiny tasks).

Run as root from the repository root: `uv run python tests/slurm/bench_relay_cost.py`.
"""

import os
import sys
import time

sys.path[:0] = ["tests/slurm", "tests"]
from slurm_lab import SlurmLab

import skyward as sky


def noop(i):
    return i


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


lab = SlurmLab()
os.environ.update(lab.env)
try:
    for round_ in range(3):
        lab.resume_all()
        with sky.ComputePool(
            provider=sky.Slurm(time="10:00", quiet=True), nodes=2, worker=sky.Worker(concurrency=2)
        ) as pool:
            agents = [n.pid for n in pool.nodes]
            relays = [ppid(p) for p in agents]
            before = [cpu_s(p) for p in agents + relays]
            c0, t0 = time.process_time(), time.monotonic()
            futures = [pool.submit(noop, i) for i in range(4000)]
            assert [f.result() for f in futures] == list(range(4000))
            wall, client = time.monotonic() - t0, time.process_time() - c0
            after = [cpu_s(p) for p in agents + relays]
            used = [a - b for a, b in zip(after, before)]
            agent_us = sum(used[:2]) / 4000 * 1e6
            relay_us = sum(used[2:]) / 4000 * 1e6
            print(
                f"round {round_}: wall {wall:.2f}s, client cpu {client / 4000 * 1e6:.0f} us/task, "
                f"agents {agent_us:.0f} us/task, relays {relay_us:.0f} us/task"
            )
finally:
    lab.close()
