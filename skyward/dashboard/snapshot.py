"""What the dashboard page is sent each second: one JSON-able dict built from `pool.stats` and the scheduler.

No second bookkeeping: node counters, states and recent tasks are `pool.stats`'s (see `skyward.pool_stats`);
the scheduler is read for what runs now (slots busy, labelled windows such as a joblib call). Nothing here
carries a task's arguments or the pool's secret: functions by name, failures by their remote traceback text.
Times are sent as wall-clock seconds (``time.time()``) for the page to draw.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skyward.bootstrap.progress import BootstrapEvent
from skyward.pool_stats import TaskRecord

if TYPE_CHECKING:
    from skyward.pool import ComputePool

#: Seconds of history the page draws (task stream, throughput); records older than that are not sent.
HISTORY_SECONDS = 180.0
#: Task records sent in one response at most (the newest): more would not show at the stream's resolution.
MAX_TASKS_SENT = 2000


@dataclass
class Watch:
    """What the dashboard keeps besides `pool.stats`: bootstrap events of its nodes and one sample a second."""

    pool_id: str
    started: float = field(default_factory=time.time)
    provisioning: dict[str, dict[str, Any]] = field(default_factory=dict)  # node name -> its latest phase
    samples: deque[tuple[float, int, int, int]] = field(default_factory=lambda: deque(maxlen=600))

    def on_bootstrap(self, event: BootstrapEvent) -> None:
        """A bootstrap event (of any pool: kept when it is one of this pool's nodes)."""
        if event.node.startswith(self.pool_id):
            self.provisioning[event.node] = {
                "host": event.host, "phase": event.phase, "message": event.message,
                "elapsed": round(event.elapsed, 1), "at": time.time(),
            }  # fmt: skip

    def sample(self, pool: ComputePool) -> None:
        """Record (time, tasks finished, slots busy, slots) for the throughput and utilisation charts."""
        scheduler = pool._scheduler
        if scheduler is None:
            return
        stats = scheduler.stats
        busy = sum(min(len(n.running), n.capacity) for n in scheduler.nodes if n.alive)
        self.samples.append((time.time(), stats.done + stats.failed, busy, scheduler.total_slots))


def build(pool: ComputePool, watch: Watch, since: float) -> dict[str, Any]:
    """The page's data: the pool, its nodes, tasks that ended after `since` (wall clock), charts and calls."""
    now_wall, now_mono = time.time(), time.monotonic()
    offset = now_wall - now_mono
    scheduler, deployment = pool._scheduler, pool._deployment
    out: dict[str, Any] = {
        "now": now_wall,
        "pool": {
            "id": pool.cluster.pool_id, "provider": pool.provider.name, "nodes": pool.cluster.nodes,
            "concurrency": pool.worker.concurrency, "executor": pool.worker.executor,
            "active": scheduler is not None, "uptime": round(now_wall - watch.started, 1),
        },
        "provisioning": watch.provisioning,
        "samples": [list(s) for s in watch.samples if s[0] >= now_wall - HISTORY_SECONDS],
        "nodes": [], "tasks": [], "calls": [], "totals": {},
    }  # fmt: skip
    if scheduler is None:  # still provisioning: the nodes its bootstrap events name, starting
        out["nodes"] = [_starting(pool, name, event) for name, event in sorted(watch.provisioning.items())]
        return out
    stats = scheduler.stats
    details = getattr(deployment, "node_details", None)
    infos = {n.info.index: n.info for n in deployment.nodes} if deployment is not None else {}
    for row, node in zip(stats.node_rows(), list(scheduler.nodes), strict=False):
        info = infos.get(node.index)
        row.update(
            index=node.index, provider=pool.provider.name,
            executor=info.executor if info else pool.worker.executor, threads=info.threads if info else None,
            busy=min(len(node.running), node.capacity) if node.alive else 0,
            details=_details(details, node.index), phase=watch.provisioning.get(node.name, {}).get("phase"),
        )  # fmt: skip
        out["nodes"].append(row)
    # At thousands of tasks a second the records are most of the response and of its cost: each is a list,
    # its function an index into `functions`, its times whole milliseconds before `now` (floats' JSON is slow).
    functions: dict[str, int] = {}
    out["tasks"] = [
        [functions.setdefault(function, len(functions)), node, slot, int((now_mono - start) * 1000),
         int((now_mono - end) * 1000), ok, None if ok else TaskRecord(function, node, slot, start, end, ok, error)
         .traceback()]
        for function, node, slot, start, end, ok, error in stats.recent_raw(
            HISTORY_SECONDS, after=since - offset, limit=MAX_TASKS_SENT
        )
    ]  # fmt: skip
    out["functions"] = list(functions)
    out["calls"] = _calls(scheduler)
    out["cost"] = _cost(deployment)
    out["totals"] = {
        "done": stats.done, "failed": stats.failed, "retried": stats.retried,
        "cancelled": stats.cancelled_total, "busy_seconds": round(stats.busy_seconds, 1),
        "tasks_sent": stats.tasks_sent, "bytes_out": sum(n.bytes_out for n in stats.nodes),
        "bytes_in": sum(n.bytes_in for n in stats.nodes), "slots": scheduler.total_slots,
        "queued": scheduler.queued,
    }  # fmt: skip
    return out


def _starting(pool: ComputePool, name: str, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "index": -1, "host": event["host"], "state": "starting", "reason": event["phase"],
        "provider": pool.provider.name, "executor": pool.worker.executor, "threads": None, "details": {},
        "slots": pool.worker.concurrency, "busy": 0, "done": 0, "failed": 0, "retried": 0, "cancelled": 0,
        "busy_seconds": 0.0, "bytes_out": 0, "bytes_in": 0, "queue_depth": 0, "heartbeat_age": None,
        "phase": event["phase"],
    }  # fmt: skip


def _details(details: Any, index: int) -> Mapping[str, str]:
    if details is None:
        return {}
    try:
        return dict(details(index))
    except Exception:  # noqa: BLE001  (a provider's extra details are best effort)
        return {}


def _cost(deployment: Any) -> str | None:
    """The provider's running-cost estimate of the pool (AWS), if it has one."""
    estimate = getattr(deployment, "cost_estimate", None)
    if estimate is None:
        return None
    try:
        return estimate()
    except Exception:  # noqa: BLE001  (best effort, as the details)
        return None


def _calls(scheduler: Any) -> list[dict[str, Any]]:
    """The labelled windows still open (a joblib call's batches, ...): done of submitted so far."""
    for _ in range(3):  # a weak set changed by another thread while copied: look again
        try:
            windows = list(scheduler.placement.windows)
            break
        except RuntimeError:
            continue
    else:
        return []
    return [
        {
            "label": w.label,
            "done": w.finished,
            "total": w.joined,
            "in_flight": w.in_flight,
            "stopped": w.stopped,
        }
        for w in windows
        if w.label and not w.cancelled
    ]
