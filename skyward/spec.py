"""Frozen specifications of a pool's nodes: how many slots each has and how it runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ExecutorKind = Literal["thread", "process"]


@dataclass(frozen=True, slots=True)
class Worker:
    """How each node runs tasks.

    Attributes:
        concurrency: slots per node: how many tasks one node runs at the same time.
        executor: ``"thread"`` runs tasks in threads of the worker process (cheap, shares memory; best for I/O
            and for code that releases the GIL, like numpy and scikit-learn); ``"process"`` runs each slot in a
            process of its own (pure-Python CPU work).
    """

    concurrency: int = 1
    executor: ExecutorKind = "thread"

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise ValueError(f"Worker.concurrency must be a positive int, got {self.concurrency!r}")
        if self.executor not in ("thread", "process"):
            raise ValueError(f"Worker.executor must be 'thread' or 'process', got {self.executor!r}")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What a pool asks its provider for; plugins receive it in their hooks.

    Attributes:
        pool_id: unique id of the pool, used in node names and cloud tags.
        nodes: how many nodes.
        worker: slots per node and how they run.
        provider: the provider's name (``"local"``, ``"ssh"``, ``"aws"``).
    """

    pool_id: str
    nodes: int
    worker: Worker
    provider: str
