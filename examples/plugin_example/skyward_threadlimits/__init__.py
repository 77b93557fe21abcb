"""skyward-threadlimits: a complete third-party skyward plugin, small enough to read in one go.

A node runs ``concurrency`` tasks at once, and numpy, SciPy and scikit-learn hand their heavy lifting to BLAS and
OpenMP libraries that start one thread per core *in every task*: eight slots on an eight-core node become 64
threads fighting over eight cores. skyward's nodes already default to their share of the cores per slot; this
plugin pins an exact number instead (one thread per task, say, whatever the machine). Those libraries read their
thread limit from environment variables when they load, so the plugin puts the limits in the node image's
environment (``image_transform``) and, once the nodes are up, checks that every node really has them
(``around_client``).

    import skyward as sky

    with sky.ComputePool(nodes=4, worker=sky.Worker(concurrency=8), plugins=[sky.plugins.threadlimits()]):
        ...   # each task's BLAS uses one thread

The package's ``pyproject.toml`` registers ``plugin`` below in the ``skyward.plugins`` entry-point group, under
the name ``threadlimits``: that is all ``sky.plugins.threadlimits(...)`` needs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import skyward

#: The variables OpenMP, OpenBLAS, MKL, Apple Accelerate and numexpr read their thread counts from.
LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

log = logging.getLogger(__name__)


class ThreadLimits:
    """The plugin object: ``threads`` BLAS/OpenMP threads per task on every node.

    Args:
        threads: the thread limit each task's numeric libraries get.
        check: once the nodes are up, ask every node for its limits and raise if one lacks them (a provider
            that dropped the image's environment would otherwise go unnoticed until the cluster crawls).
    """

    def __init__(self, threads: int = 1, *, check: bool = True) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        self.threads = threads
        self.check = check
        self._expected: dict[str, str] = {}

    @skyward.hookimpl
    def image_transform(self, image: skyward.Image, cluster: skyward.ClusterSpec) -> skyward.Image:
        """Add the limits to the node environment; a variable the image already sets keeps its value."""
        limits = {name: str(self.threads) for name in LIMIT_VARIABLES}
        # Images are frozen: return a new one. Its own env entries win over ours.
        env = {**limits, **image.env}
        self._expected = {name: env[name] for name in LIMIT_VARIABLES}  # what the check looks for on nodes
        return dataclasses.replace(image, env=env)

    @skyward.hookimpl
    def around_client(
        self, pool: skyward.ComputePool, cluster: skyward.ClusterSpec
    ) -> AbstractContextManager[None] | None:
        """Check the nodes on entry; log how much ran under the limits on exit."""
        return self._checked(pool) if self.check else None

    @contextmanager
    def _checked(self, pool: skyward.ComputePool) -> Iterator[None]:
        for name in LIMIT_VARIABLES:
            # `os.getenv` travels by reference: nothing of this package has to be installed on the nodes.
            seen = pool.broadcast(os.getenv, name)
            expected = self._expected.get(name, str(self.threads))
            wrong = {
                node.name: value for node, value in zip(pool.nodes, seen, strict=True) if value != expected
            }
            if wrong:
                raise RuntimeError(f"threadlimits: {name} is not {expected} on nodes: {wrong}")
        try:
            yield
        finally:
            log.info("threadlimits: %d tasks sent to nodes with thread limits", pool.stats.tasks_sent)

    def __repr__(self) -> str:
        return f"skyward.plugins.threadlimits(threads={self.threads})"


def plugin(threads: int = 1, *, check: bool = True) -> ThreadLimits:
    """The entry point: ``sky.plugins.threadlimits(threads=1, check=True)`` calls this factory."""
    return ThreadLimits(threads, check=check)


__all__ = ["LIMIT_VARIABLES", "ThreadLimits", "plugin"]
