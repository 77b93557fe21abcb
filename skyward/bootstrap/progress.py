"""Progress of node bootstraps: one event per phase of each node, printed unless the provider is quiet."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Phase = Literal["connect", "probe", "cached", "upload", "install", "wait", "installed", "start", "ready"]


@dataclass(frozen=True)
class BootstrapEvent:
    """A node entered a phase of its bootstrap.

    Phases, in order: ``connect`` (opening SSH), ``probe`` (asking the node about its interpreter and
    platform), then either ``cached`` (its environment exists: nothing to install) or ``upload`` (wheels sent
    over SFTP), ``install`` (creating the environment), possibly ``wait`` (another process or host sharing the
    home is installing the same image) and ``installed``; finally ``start`` (the worker is launched) and
    ``ready`` (its tunnel is open).

    Attributes:
        node: the node's name.
        host: the host as given to `sky.SSH`.
        phase: the phase entered.
        message: details for humans.
        elapsed: seconds since this node's bootstrap began.
    """

    node: str
    host: str
    phase: Phase
    message: str
    elapsed: float

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"skyward [{self.node} {self.host}] {self.phase}{detail} ({self.elapsed:.1f}s)"


ProgressCallback = Callable[[BootstrapEvent], None]


#: Called with every bootstrap event of every pool, besides the provider's own display (the dashboard
#: subscribes while it runs; it keeps its own pool's nodes). Called on skyward's I/O thread: keep it quick.
listeners: set[ProgressCallback] = set()


def publish(event: BootstrapEvent) -> None:
    """Hand `event` to the `listeners` (one that raises is dropped from this event, not from the bootstrap)."""
    for listener in list(listeners):
        try:
            listener(event)
        except Exception:  # noqa: BLE001, S112  (a watcher must not break a bootstrap)
            continue


def print_event(event: BootstrapEvent) -> None:
    """The default progress display: one line per event on stderr."""
    print(event, file=sys.stderr, flush=True)
