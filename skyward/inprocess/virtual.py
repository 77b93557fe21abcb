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
from dataclasses import dataclass

from skyward import reply
from skyward.blobs import BlobStore
from skyward.inprocess.host import DelayLine
from skyward.worker.execute import execute
from skyward.worker.slots import Done


@dataclass(eq=False, slots=True)
class _Job:
    task_id: str
    payload: bytes
    blobs: bool  # it refers to blobs
    done: Done
    started: bool = False
    cancelled: bool = False  # withdrawn while queued: skipped when it comes up
    dropped: bool = False  # its slots shut down while it was held


class VirtualSlots:
    """`skyward.worker.slots.Slots` without threads. Every call runs on the node's event loop (its host's), and
    so does ``done``."""

    def __init__(self, concurrency: int, store: BlobStore, seconds: float) -> None:
        self.concurrency = concurrency
        self._store = store
        self._seconds = seconds
        self._queued: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}  # queued or running
        self._running = 0
        self._closed = False
        self._line: DelayLine | None = None  # made on first use, on the node's loop

    def submit(self, payload: bytes, task_id: str, blobs: tuple[bytes, ...], done: Done) -> None:
        job = _Job(task_id, payload, bool(blobs), done)
        self._jobs[task_id] = job
        self._queued.append(job)
        self._start_next()

    def _start_next(self) -> None:
        line = self._line
        if line is None:
            # Every slot of every node on this loop holds tasks equally long: one delay line (no timer per task).
            line = self._line = DelayLine.shared(asyncio.get_running_loop(), ("virtual slots", self._seconds))
        loop = line.loop
        while self._running < self.concurrency and self._queued and not self._closed:
            job = self._queued.popleft()
            if job.cancelled:
                continue
            job.started = True
            self._running += 1
            line.add_at(loop.time() + self._seconds, self._finish, job)

    def _finish(self, job: _Job) -> None:
        if job.dropped:
            return
        self._running -= 1
        self._jobs.pop(job.task_id, None)
        job.done(job.task_id, execute(job.payload, job.task_id, self._store.get if job.blobs else None))
        self._start_next()

    def cancel(self, task_id: str, stop_running: bool = True) -> bool:
        """Withdraw a task that has not started; a started one runs to its end, as in a thread slot."""
        job = self._jobs.get(task_id)
        if job is None or job.started:
            return False
        del self._jobs[task_id]
        job.cancelled = True
        job.done(task_id, reply.cancelled())
        return True

    @property
    def running(self) -> int:
        return self._running

    def shutdown(self) -> None:
        self._closed = True
        jobs, self._jobs = self._jobs, {}
        self._queued.clear()
        for job in jobs.values():
            job.dropped = True
            if not job.started:  # withdrawn; a held one is never answered (as a thread slot's never ends)
                job.done(job.task_id, reply.cancelled())
