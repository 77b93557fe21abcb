"""CPU a compute node spends per task, on the Slurm lab (2 nodes x 2 slots, 4000 tiny tasks per pool).

Per node, the processes of the agent's step: the agent, whatever runs between it and slurmstepd (the node relay
before commit ebd38db; nothing since) and the step's slurmstepd (it carries the agent's output).
CPU from /proc/<pid>/stat (utime + stime), before and after the 4000 tasks. Run as root from the repository
root: `uv run python tests/slurm/bench_node_cpu.py`.
"""

import os
import sys
import time

sys.path[:0] = ["tests/slurm", "tests"]
from slurm_lab import SlurmLab

import skyward as sky

TASKS = 4000


def noop(i):
    return i


def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], tail.split()


def cpu_s(pid):
    fields = stat(pid)[1]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step_processes(agent):
    """(agent, [processes between it and slurmstepd], slurmstepd)."""
    between, pid = [], int(stat(agent)[1][1])
    while not stat(pid)[0].startswith("slurmstepd"):
        between.append(pid)
        pid = int(stat(pid)[1][1])
    return agent, between, pid


lab = SlurmLab()
os.environ.update(lab.env)
try:
    for round_ in range(3):
        lab.resume_all()
        with sky.ComputePool(
            provider=sky.Slurm(time="10:00", quiet=True), nodes=2, worker=sky.Worker(concurrency=2)
        ) as pool:
            steps = [step_processes(n.pid) for n in pool.nodes]
            groups = {
                "agents": [s[0] for s in steps],
                "between": [p for s in steps for p in s[1]],
                "slurmstepd": [s[2] for s in steps],
            }
            before = {k: sum(cpu_s(p) for p in v) for k, v in groups.items()}
            c0, t0 = time.process_time(), time.monotonic()
            futures = [pool.submit(noop, i) for i in range(TASKS)]
            assert [f.result() for f in futures] == list(range(TASKS))
            wall, client = time.monotonic() - t0, time.process_time() - c0
            used = {k: (sum(cpu_s(p) for p in v) - before[k]) / TASKS * 1e6 for k, v in groups.items()}
            print(
                f"round {round_}: wall {wall:.2f}s, client cpu {client / TASKS * 1e6:.0f} us/task, "
                f"node cpu {sum(used.values()):.0f} us/task = agents {used['agents']:.0f} + relays "
                f"{used['between']:.0f} ({len(groups['between'])} processes) + slurmstepd "
                f"{used['slurmstepd']:.0f}"
            )
finally:
    lab.close()
