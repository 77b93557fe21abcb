"""The node's slots: `concurrency` threads or processes that run serialized tasks.

Both kinds answer the same two calls: `submit(payload, task_id) -> Future[bytes]` and `cancel(task_id)`.
A task not started yet is always cancellable. A running task can be stopped only in a process slot: the
process is killed and a fresh one takes its place (a thread cannot be stopped from outside).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

from skyward import wire
from skyward.spec import ExecutorKind
from skyward.worker.execute import execute


class Slots(Protocol):
    concurrency: int

    def submit(self, payload: bytes, task_id: str) -> Future[bytes]: ...

    def cancel(self, task_id: str) -> bool:
        """Stop the task if possible; True when it will not run (or not finish)."""
        ...

    def shutdown(self) -> None: ...


def make_slots(kind: ExecutorKind, concurrency: int) -> Slots:
    return ProcessSlots(concurrency) if kind == "process" else ThreadSlots(concurrency)


class ThreadSlots:
    """Slots as threads of the agent: no start-up cost, shared memory, running tasks run to the end."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="skyward-slot")
        self._futures: dict[str, Future[bytes]] = {}

    def submit(self, payload: bytes, task_id: str) -> Future[bytes]:
        future = self._executor.submit(execute, payload, task_id)
        self._futures[task_id] = future
        future.add_done_callback(lambda _: self._futures.pop(task_id, None))
        return future

    def cancel(self, task_id: str) -> bool:
        future = self._futures.get(task_id)
        return future is not None and future.cancel()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _slot_process(conn: Connection) -> None:
    """Body of a process slot: run tasks from the pipe until it closes."""
    while True:
        try:
            task_id, payload = conn.recv()
        except (EOFError, OSError):
            return
        conn.send_bytes(execute(payload, task_id))


@dataclass(eq=False)
class _Job:
    task_id: str
    payload: bytes
    future: Future[bytes]


class _ProcessSlot:
    """One slot: a spawned process and the thread that feeds it."""

    def __init__(
        self,
        context: multiprocessing.context.SpawnContext,
        jobs: queue.SimpleQueue[_Job | None],
        closing: threading.Event,
    ) -> None:
        self._context = context
        self._jobs = jobs
        self._closing = closing
        self._lock = threading.Lock()
        self.current: _Job | None = None
        self._start_process()
        self._thread = threading.Thread(target=self._feed, daemon=True, name="skyward-process-slot")
        self._thread.start()

    def _start_process(self) -> None:
        ours, theirs = self._context.Pipe()
        self._conn = ours
        # spawn, never fork: the agent runs casty's transport threads.
        self.process = self._context.Process(target=_slot_process, args=(theirs,), daemon=True)
        self.process.start()
        theirs.close()

    def _feed(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.current = job
            try:
                self._conn.send((job.task_id, job.payload))
                result = self._conn.recv_bytes()
            except (EOFError, OSError):
                result = self._replace(job)
            with self._lock:
                self.current = None
            job.future.set_result(result)
        self.process.kill()

    def _replace(self, job: _Job) -> bytes:
        """The process died under `job`: killed by `stop` (cancelled) or crashed. Start a fresh one."""
        self.process.join()
        cancelled = getattr(job, "stopped", False)
        code = self.process.exitcode
        self._conn.close()
        if not self._closing.is_set():
            self._start_process()
        if cancelled:
            return wire.reply_cancelled()
        return wire.reply_error(RuntimeError(f"the slot process running task {job.task_id} died (exit code {code})"))

    def stop(self, task_id: str) -> bool:
        with self._lock:
            job = self.current
            if job is None or job.task_id != task_id:
                return False
            job.stopped = True  # type: ignore[attr-defined]
            self.process.kill()
            return True


class ProcessSlots:
    """Slots as processes of their own: CPU-bound Python in parallel, and running tasks can be stopped."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._queued: dict[str, _Job] = {}
        self._closing = threading.Event()
        context = multiprocessing.get_context("spawn")
        self._slots = [_ProcessSlot(context, self._jobs, self._closing) for _ in range(concurrency)]

    def submit(self, payload: bytes, task_id: str) -> Future[bytes]:
        future: Future[bytes] = Future()
        job = _Job(task_id, payload, future)
        self._queued[task_id] = job
        future.add_done_callback(lambda _: self._queued.pop(task_id, None))
        self._jobs.put(job)
        return future

    def cancel(self, task_id: str) -> bool:
        job = self._queued.get(task_id)
        if job is None:
            return False
        if job.future.cancel():
            return True
        return any(slot.stop(task_id) for slot in self._slots)

    def shutdown(self) -> None:
        self._closing.set()
        for slot in self._slots:
            self._jobs.put(None)
            slot.process.kill()
