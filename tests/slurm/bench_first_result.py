"""Time from `with` to the first result on the Slurm lab, 5 pools in a row.

Run as root from the repository root: `uv run python tests/slurm/bench_first_result.py`.
"""

import os
import socket
import statistics
import sys
import time

sys.path[:0] = ["tests/slurm", "tests"]
from slurm_lab import SlurmLab

import skyward as sky


def where():
    return socket.gethostname()


lab = SlurmLab()
os.environ.update(lab.env)
try:
    figures = []
    for _ in range(5):
        lab.resume_all()
        t = time.monotonic()
        with sky.ComputePool(provider=sky.Slurm(time="10:00", quiet=True), nodes=2) as pool:
            pool.submit(where).result()
            figures.append(time.monotonic() - t)
    print(
        "with -> first result (s):",
        [f"{f:.2f}" for f in figures],
        "median",
        f"{statistics.median(figures):.2f}",
    )
finally:
    lab.close()
