"""Watching a pool's nodes: heartbeats, worker processes that die, and their restart.

- Every node is sent a heartbeat well inside its lease; one that stays silent (a cut link, a frozen host) is
  lost after ``max(3 beats, lease / 2)``, before its own lease stops it.
- A node whose link fails, or whose worker process the provider sees exit, is *down*: the scheduler sends it
  nothing while this module asks the provider why (`Deployment.exit_info`). A process that exited while its
  machine answers is a crash: the scheduler charges it to the tasks that ran there (`Scheduler.node_crashed`)
  and the provider starts the worker again, the way it started it first (`Deployment.restart`); the node
  rejoins with its slots and an empty cache. A machine that cannot be reached is lost (`Scheduler.node_lost`),
  as is a node that cannot be restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from skyward.errors import describe_exit
from skyward.link import Link
from skyward.providers.base import Deployment
from skyward.scheduler import Scheduler

logger = logging.getLogger("skyward.recovery")

_PROCESS_EXITED = "its worker process exited"  # what the watch says; the crash's warning says more

# How often the provider is asked whether each worker process still runs (local state: cheap).
_PROCESS_CHECK_INTERVAL = 0.25


class NodeRecovery:
    """The watch over one active pool's nodes; `watch` runs on the I/O loop until cancelled."""

    def __init__(
        self,
        deployment: Deployment,
        links: list[Link],
        make_link: Callable[[int], Link],
        *,
        lease: float,
        restart: bool,
    ) -> None:
        self.scheduler: Scheduler | None = None  # set once the scheduler exists (it calls `on_node_down`)
        self._deployment = deployment
        self._links = links  # the pool's list: a restarted node's link replaces the old one in it
        self._make_link = make_link
        self._lease = lease
        self._restart = restart
        self._recovering: dict[int, asyncio.Task[None]] = {}
        self._stopped = False

    async def watch(self) -> None:
        """Heartbeat every node, and report those whose worker process exited at once."""
        interval = max(0.5, min(5.0, self._lease / 4))
        silence_limit = max(3 * interval, self._lease / 2)
        last_answer: dict[int, float] = {}
        next_beat = time.monotonic() + interval
        while True:
            await asyncio.sleep(_PROCESS_CHECK_INTERVAL)
            scheduler = self.scheduler
            if scheduler is None:
                continue
            for node in scheduler.nodes:
                if node.alive and not self._deployment.is_alive(node.index):
                    scheduler.node_down(node.index, _PROCESS_EXITED, node.generation)
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + interval
            live = [node for node in scheduler.nodes if node.alive]
            answers = await _beat_all([node.link for node in live], 2 * interval)
            now = time.monotonic()
            for node, answered in zip(live, answers, strict=True):
                if answered or not node.alive:  # (a node restarted meanwhile has a fresh link)
                    last_answer[node.index] = now
                    scheduler.stats.nodes[node.index].last_heartbeat = now
                elif now - last_answer.setdefault(node.index, now) > silence_limit:
                    scheduler.node_lost(node.index, f"no answer to heartbeats for {silence_limit:.0f}s")

    def on_node_down(self, index: int, reason: str) -> None:
        """The scheduler's callback, on the I/O loop: find out why node `index` went down; restart it."""
        if self._stopped:  # the pool is closing: its nodes are being stopped
            return
        if index not in self._recovering:
            task = asyncio.get_running_loop().create_task(self._recover(index, reason))
            self._recovering[index] = task
            task.add_done_callback(lambda _: self._recovering.pop(index, None))

    async def _recover(self, index: int, reason: str) -> None:
        scheduler = self.scheduler
        assert scheduler is not None
        try:
            ended = await asyncio.to_thread(self._deployment.exit_info, index)
        except Exception as exc:  # noqa: BLE001 - a provider that cannot tell: the node is lost
            ended = None
            reason += f" (and its exit could not be read: {exc})"
        if ended is None:
            scheduler.node_lost(index, reason)
            return
        if not scheduler.node_crashed(
            index,
            ended.exit_code,
            ended.signal,
            ended.output,
            restart=self._restart,
            down_reason="" if reason == _PROCESS_EXITED else reason,
        ):
            return
        name = scheduler.nodes[index].name
        started_at = time.monotonic()
        link: Link | None = None
        try:
            await asyncio.to_thread(self._deployment.restart, index)
            link = self._make_link(index)
            await link.connect()
        except asyncio.CancelledError:  # the pool is closing
            if link is not None:
                await link.close()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stops a restart leaves the node lost
            if link is not None:
                await link.close()
            scheduler.node_lost(index, f"its worker process died and could not be restarted: {exc}")
            return
        old, self._links[index] = self._links[index], link
        await old.close()
        scheduler.node_restarted(index, link)
        logger.info(  # the crash was the WARNING (Scheduler.node_crashed)
            "restarted node %s (%s) in %.1fs",
            name,
            describe_exit(ended.exit_code, ended.signal),
            time.monotonic() - started_at,
        )

    def stop(self) -> None:
        """Cancel restarts in progress, and start none (teardown)."""
        self._stopped = True
        for task in list(self._recovering.values()):
            task.cancel()


async def _beat_all(links: list[Link], timeout: float) -> list[bool]:
    """Heartbeat every link at once; which answered True within `timeout` (a timeout or a lost link: False).

    One deadline for the round, not one timer per beat: at 1,000 nodes that is a third of the watch's CPU
    (benchmarks/simulate.py --heartbeat-seconds).
    """
    if not links:
        return []
    beats = [asyncio.ensure_future(link.heartbeat()) for link in links]
    done, pending = await asyncio.wait(beats, timeout=timeout)
    for beat in pending:
        beat.cancel()
    return [beat in done and not beat.cancelled() and beat.exception() is None and bool(beat.result())
            for beat in beats]  # fmt: skip
