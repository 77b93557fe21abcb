"""`pool.stats`: what a pool did, per node and in total, kept as it happens; the dashboard reads the same object.

The scheduler and its dispatcher write the counters where a reply is settled and where a node's state changes:
O(1) work per task (a few additions, a heap step over the node's slots and one append to a bounded ring), no
lock of its own (writers hold the scheduler's lock or run on the I/O loop; readers take a consistent-enough
copy of plain numbers). Times are `time.monotonic()`; the wall clock is only used to show them.

Which slot ran a task is not reported by nodes: a node runs the tasks it is sent first come, first served, so
a task starts when it was sent or when the earliest of its node's slots freed up, whichever is later. That model
places each task on a slot (for the task stream) and sums its node's busy seconds.
"""

from __future__ import annotations

import heapq
import io
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from skyward import reply as replies
from skyward.uploads import TransferStats

_OK, _ERROR = replies.Ok, replies.Error

#: Records of recent tasks kept for the task stream: at most this many, and none older than `RECENT_SECONDS`.
RECENT_TASKS = 5000
RECENT_SECONDS = 300.0
#: Characters of a failure's remote traceback kept in its record.
TRACEBACK_CHARS = 4000


@dataclass(slots=True)
class TaskRecord:
    """One finished task, for the task stream: what ran where and when, and how it ended."""

    function: str
    node: int
    slot: int
    start: float  # monotonic
    end: float
    ok: bool
    error: Any = None  # a failure: its `reply.Error` (decoded lazily, off the hot path) or the exception

    def traceback(self) -> str:
        """The failure's remote traceback (or message), '' for a task that succeeded."""
        if self.ok:
            return ""
        error = self.error
        if isinstance(error, str):
            return error
        if hasattr(error, "frame"):  # a node's Error reply: (type name, message, traceback text, pickle)
            from skyward import wire

            try:
                type_name, message, tb_text, _ = wire.loads(error.frame)
            except Exception:  # noqa: BLE001  (an unreadable reply fails its task too; say so)
                return "(the node's error reply could not be read)"
            text = str(tb_text) or f"{type_name}: {message}"
        else:
            text = f"{type(error).__name__}: {error}"
        return text[-TRACEBACK_CHARS:]


@dataclass(slots=True)
class NodeStats:
    """One node's counters. `state` is ``starting``, ``ready``, ``restarting`` or ``lost`` (see `reason`)."""

    index: int
    name: str
    host: str = ""
    slots: int = 1
    state: str = "ready"
    reason: str = ""  # why it is lost, or why it is being restarted
    done: int = 0
    failed: int = 0
    retried: int = 0  # tasks it held that were sent again (its loss, a crash)
    cancelled: int = 0
    busy_seconds: float = 0.0
    bytes_out: int = 0  # tasks and large arguments sent to it
    bytes_in: int = 0  # replies
    last_heartbeat: float = field(default_factory=time.monotonic)
    lanes: list[tuple[float, int]] = field(default_factory=list)  # (time the slot frees, slot): a heap

    def __post_init__(self) -> None:
        self.lanes = [(0.0, slot) for slot in range(self.slots)]

    def heartbeat_age(self) -> float:
        """Seconds since the node last answered a heartbeat (or came up)."""
        return time.monotonic() - self.last_heartbeat

    def restarted(self) -> None:
        """A fresh worker process: its slots are free."""
        self.lanes = [(0.0, slot) for slot in range(self.slots)]


class PoolStats(TransferStats):
    """What a pool did: per node (`nodes`), in total, and its recent tasks (`recent`).

    The transfer counters (`tasks_sent`, `task_bytes`, `blobs_sent`, `blob_bytes`) are inherited, as they were.
    ``print(pool.stats)`` (or `table`) shows the per-node table.
    """

    def __init__(self, nodes: list[NodeStats] | None = None) -> None:
        super().__init__()
        self.nodes: list[NodeStats] = nodes or []
        self.recent: deque[tuple[Any, ...]] = deque(maxlen=RECENT_TASKS)  # `TaskRecord` fields, as tuples
        self.cancelled_waiting = 0  # cancelled before they reached a node
        self.started = time.monotonic()
        self.queue_depth = lambda index: 0  # the node's tasks beyond its slots: the scheduler's to tell

    # --- written by the scheduler ---------------------------------------------------------------------------

    def replied(self, node: int, function: str, sent: float | None, end: float, outcome: object) -> None:
        """`node` answered a task with `outcome`: a few additions, a heap step over the node's slots and an
        append (about 1.5 us); a cancelled task is counted by `cancelled`, when its future is."""
        kind = type(outcome)
        if kind is _OK:
            ok, error = True, None
        elif kind is _ERROR or isinstance(outcome, BaseException):
            ok, error = False, outcome
        else:
            return
        stats = self.nodes[node]
        if ok:
            stats.done += 1
        else:
            stats.failed += 1
        lanes = stats.lanes  # the slot that freed first ran it (the module docstring)
        free_at, slot = lanes[0]
        # Comparisons, not min()/max(): two builtin calls cost ~0.9 us of the ~1.4 here.
        start = end if sent is None else (sent if sent > free_at else free_at)  # noqa: FURB136
        if start > end:  # noqa: PLR1730
            start = end
        heapq.heapreplace(lanes, (end, slot))
        stats.busy_seconds += end - start
        self.recent.append((function, node, slot, start, end, ok, error))

    def failed_without_reply(self, node: int, function: str, error: BaseException) -> None:
        """A task failed with its node (lost, or crashed too often under it)."""
        now = time.monotonic()
        self.nodes[node].failed += 1
        self.recent.append((function, node, 0, now, now, False, error))

    def cancelled(self, node: int | None) -> None:
        if node is None:
            self.cancelled_waiting += 1
        else:
            self.nodes[node].cancelled += 1

    def set_state(self, node: int, state: str, reason: str = "") -> None:
        stats = self.nodes[node]
        stats.state, stats.reason = state, reason
        if state == "ready":
            stats.restarted()
            stats.last_heartbeat = time.monotonic()

    # --- read by people and the dashboard -------------------------------------------------------------------

    @property
    def done(self) -> int:
        return sum(n.done for n in self.nodes)

    @property
    def failed(self) -> int:
        return sum(n.failed for n in self.nodes)

    @property
    def retried(self) -> int:
        return sum(n.retried for n in self.nodes)

    @property
    def cancelled_total(self) -> int:
        return self.cancelled_waiting + sum(n.cancelled for n in self.nodes)

    @property
    def busy_seconds(self) -> float:
        return sum(n.busy_seconds for n in self.nodes)

    def recent_tasks(
        self, horizon: float = RECENT_SECONDS, after: float | None = None, limit: int | None = None
    ) -> list[TaskRecord]:
        """The tasks that ended in the last `horizon` seconds (and after `after`, a `time.monotonic()`), oldest
        first; the newest `limit` of them when given. Records past `RECENT_SECONDS` are dropped here."""
        return [TaskRecord(*record) for record in self.recent_raw(horizon, after, limit)]

    def recent_raw(
        self, horizon: float = RECENT_SECONDS, after: float | None = None, limit: int | None = None
    ) -> list[tuple[Any, ...]]:
        """`recent_tasks` as tuples of `TaskRecord`'s fields, for readers that want them fast (the dashboard)."""
        now = time.monotonic()
        while self.recent and self.recent[0][4] < now - RECENT_SECONDS:
            self.recent.popleft()
        cutoff = now - horizon if after is None else max(now - horizon, after)
        records = list(self.recent)  # a copy: replies may be appended meanwhile
        first = len(records)
        bottom = 0 if limit is None else max(0, first - limit)
        while first > bottom and records[first - 1][4] > cutoff:  # appended as they end: the newest are last
            first -= 1
        return records[first:]

    def node_rows(self) -> list[dict[str, Any]]:
        """One dict per node: its counters, queue depth and heartbeat age (seconds), as the table shows them."""
        return [
            {
                "name": n.name, "host": n.host, "state": n.state, "reason": n.reason, "slots": n.slots,
                "done": n.done, "failed": n.failed, "retried": n.retried, "cancelled": n.cancelled,
                "busy_seconds": round(n.busy_seconds, 3), "bytes_out": n.bytes_out, "bytes_in": n.bytes_in,
                "queue_depth": self.queue_depth(n.index),
                "heartbeat_age": None if n.state == "lost" else round(n.heartbeat_age(), 1),
            }
            for n in list(self.nodes)
        ]  # fmt: skip

    def table(self) -> Any:
        """The per-node table with a totals row, as a `rich.table.Table`."""
        from rich.table import Table

        table = Table(title="skyward: pool stats", title_justify="left")
        columns = ("node", "state", "done", "failed", "retried", "cancelled", "busy s", "out", "in", "queue",
                   "heartbeat")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="left" if column in ("node", "state") else "right")
        for row in self.node_rows():
            state = row["state"] + (f" ({row['reason']})" if row["reason"] else "")
            age = "-" if row["heartbeat_age"] is None else f"{row['heartbeat_age']:.1f}s ago"
            table.add_row(row["name"], state, str(row["done"]), str(row["failed"]), str(row["retried"]),
                          str(row["cancelled"]), f"{row['busy_seconds']:.1f}", _size(row["bytes_out"]),
                          _size(row["bytes_in"]), str(row["queue_depth"]), age)  # fmt: skip
        table.add_row("total", "", str(self.done), str(self.failed), str(self.retried),
                      str(self.cancelled_total), f"{self.busy_seconds:.1f}",
                      _size(sum(n.bytes_out for n in self.nodes)), _size(sum(n.bytes_in for n in self.nodes)),
                      str(sum(self.queue_depth(n.index) for n in self.nodes)), "", style="bold")  # fmt: skip
        return table

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=140, file=io.StringIO(), color_system=None)
        console.print(self.table())
        return console.file.getvalue().rstrip()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (
            f"PoolStats(nodes={len(self.nodes)}, done={self.done}, failed={self.failed}, "
            f"tasks_sent={self.tasks_sent}, blobs_sent={self.blobs_sent})"
        )


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)
