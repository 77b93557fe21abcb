"""How many threads native libraries (BLAS, OpenMP, numexpr) may start in each slot of a node.

Left alone, OpenBLAS, MKL and OpenMP each start one thread per CPU of the machine in every process that uses
them. A node with 4 slots on a 4-CPU machine then runs 16 BLAS threads on 4 CPUs, and when several nodes share
one machine (the Local provider, or an SSH host listed twice) it is worse still. Measured on a 2-CPU machine:
GridSearchCV(Ridge, cv=5) over 16 candidates on 2 local nodes x 2 slots took 65 s with the libraries' own
defaults and 13 s with one thread per slot. Dask's nanny and loky make the same choice for the same reason.

The agent therefore sets the usual variables, before anything imports those libraries, to this node's share of
the machine's CPUs divided by its slots (at least 1). A variable already set (by ``Image(env=...)`` or the
environment the node starts in) is kept: the user's choice wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# The variables OpenMP, OpenBLAS, MKL, BLIS, Apple Accelerate and numexpr read at import time.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_slot(cpus: int, nodes_on_machine: int, concurrency: int) -> int:
    """Native threads for each of `concurrency` slots of one of `nodes_on_machine` nodes sharing `cpus`."""
    return max(1, cpus // max(1, nodes_on_machine) // max(1, concurrency))


def limit_native_threads(
    nodes_on_machine: int, concurrency: int, environ: MutableMapping[str, str] = os.environ
) -> dict[str, str]:
    """Set each unset thread variable of `environ` to this slot's share; return the ones it set."""
    threads = str(threads_per_slot(available_cpus(), nodes_on_machine, concurrency))
    chosen = {name: threads for name in THREAD_VARIABLES if name not in environ}
    environ.update(chosen)
    return chosen
