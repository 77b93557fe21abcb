"""Virtual slots for simulated nodes: each task is held for a set time on the node's event loop, then run.

A thousand nodes of ten slots would otherwise be ten thousand threads. A virtual slot is a count and a place
in a delay line (`skyward.inprocess.host.DelayLine`): a task starts when a slot is free (first come, first
served, as in `ThreadSlots`), is held `seconds`, and then runs for real (`skyward.worker.execute`: decoded,
called, its reply encoded), so the client gets the bytes a real node sends. Used by ``benchmarks/simulate.py``
through `skyward.inprocess.InProcess(slots=...)`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from skyward.blobs import BlobStore
from skyward.futures import LightFuture
from skyward.inprocess.host import DelayLine
from skyward.worker.execute import execute


@dataclass(eq=False, slots=True)
class _Job:
    task_id: str
    payload: bytes
    future: Future[bytes]
    blobs: bool  # it refers to blobs
    dropped: bool = False  # its slots shut down while it was held


class VirtualSlots:
    """`skyward.worker.slots.Slots` without threads. Every call runs on the node's event loop (its host's)."""

    def __init__(self, concurrency: int, store: BlobStore, seconds: float) -> None:
        self.concurrency = concurrency
        self._store = store
        self._seconds = seconds
        self._queued: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}  # queued or running
        self._running = 0
        self._closed = False
        self._line: DelayLine | None = None  # made on first use, on the node's loop

    def submit(self, payload: bytes, task_id: str, blobs: tuple[bytes, ...] = ()) -> Future[bytes]:
        job = _Job(task_id, payload, LightFuture(), bool(blobs))
        self._jobs[task_id] = job
        self._queued.append(job)
        self._start_next()
        return job.future

    def _start_next(self) -> None:
        line = self._line
        if line is None:
            # Every slot of every node on this loop holds tasks equally long: one delay line (no timer per task).
            line = self._line = DelayLine.shared(asyncio.get_running_loop(), ("virtual slots", self._seconds))
        loop = line.loop
        while self._running < self.concurrency and self._queued and not self._closed:
            job = self._queued.popleft()
            if not job.future.set_running_or_notify_cancel():  # cancelled while queued
                continue
            self._running += 1
            line.add_at(loop.time() + self._seconds, self._finish, job)

    def _finish(self, job: _Job) -> None:
        if job.dropped:
            return
        self._running -= 1
        self._jobs.pop(job.task_id, None)
        job.future.set_result(execute(job.payload, job.task_id, self._store.get if job.blobs else None))
        self._start_next()

    def cancel(self, task_id: str, stop_running: bool = True) -> bool:
        """Withdraw a task that has not started; a started one runs to its end, as in a thread slot."""
        job = self._jobs.get(task_id)
        if job is None or not job.future.cancel():
            return False
        self._jobs.pop(task_id, None)
        return True

    @property
    def running(self) -> int:
        return self._running

    def shutdown(self) -> None:
        self._closed = True
        for job in self._jobs.values():
            job.dropped = True
            job.future.cancel()
        self._jobs.clear()
        self._queued.clear()
