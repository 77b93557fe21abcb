"""The node's slots: `concurrency` threads or processes that run serialized tasks.

Both kinds answer the same calls: `submit(payload, task_id, blobs, done)` and `cancel(task_id)`; each task
submitted ends with one call of ``done(task_id, reply)``: its reply's bytes (`skyward.reply`), `reply.cancelled`
when it was withdrawn. `blobs` are the digests the task refers to, held in the node's `BlobStore`.
A task not started yet is always cancellable. A running task can be stopped only in a process slot: the
process is killed and a fresh one takes its place (a thread cannot be stopped from outside).
A process slot whose process dies under a task (``os._exit``, a segfault, the OOM killer) is replaced the same
way, and the task's reply says so (`reply.crashed`: exit code or signal, and the last lines the process
wrote, which the agent reads from a pipe of its own and forwards to its output).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

from skyward import reply
from skyward.blobs import BlobMissing, BlobStore, rebuild
from skyward.futures import LightFuture
from skyward.spec import ExecutorKind
from skyward.worker import task_output
from skyward.worker.execute import execute

# Blobs a process slot keeps rebuilt between tasks; the feeding thread mirrors the same LRU to know what to send.
_PROCESS_BLOB_CACHE = 4
# Lines of a slot process's output kept for its crash report.
_TAIL_LINES = 20


#: ``done(task_id, reply)``: a submitted task ended, with its reply's bytes. Called once per task, from any thread
#: (a slot's, or the one that cancelled it); no future per task: the agent needs only the bytes.
Done = Callable[[str, bytes], None]


class Slots(Protocol):
    concurrency: int

    def submit(self, payload: bytes, task_id: str, blobs: tuple[bytes, ...], done: Done) -> None:
        """Run the task when a slot is free; ``done(task_id, reply)`` once it ends (or is withdrawn)."""
        ...

    def cancel(self, task_id: str, stop_running: bool = True) -> bool:
        """Cancel the task if it has not started, or stop it if running and `stop_running` (where possible).

        True when it will not run (or not finish).
        """
        ...

    def shutdown(self) -> None: ...


def make_slots(
    kind: ExecutorKind, concurrency: int, store: BlobStore, thread_name: str = "skyward-slot"
) -> Slots:
    """`concurrency` slots of `kind`; thread slots are named ``<thread_name>_<n>``."""
    if kind == "process":
        return ProcessSlots(concurrency, store)
    return ThreadSlots(concurrency, store, thread_name)


class ThreadSlots:
    """Slots as threads of the agent: no start-up cost, shared memory, running tasks run to the end."""

    def __init__(self, concurrency: int, store: BlobStore, thread_name: str = "skyward-slot") -> None:
        self.concurrency = concurrency
        self._store = store
        # In-process nodes (`skyward.inprocess`) name their slots after the node: tests read where a task ran.
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix=thread_name)
        self._futures: dict[str, Future[bytes]] = {}

    def submit(self, payload: bytes, task_id: str, blobs: tuple[bytes, ...], done: Done) -> None:
        future = self._executor.submit(execute, payload, task_id, self._store.get if blobs else None)
        self._futures[task_id] = future
        future.add_done_callback(functools.partial(_report, self._futures, task_id, done))

    def cancel(self, task_id: str, stop_running: bool = True) -> bool:
        future = self._futures.get(task_id)  # a running thread cannot be stopped: only queued ones cancel
        return future is not None and future.cancel()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _report(futures: dict[str, Future[bytes]], task_id: str, done: Done, future: Future[bytes]) -> None:
    """A slot's future is done: its reply to `done` (a cancelled future's is `reply.cancelled`)."""
    futures.pop(task_id, None)
    if future.cancelled():
        done(task_id, reply.cancelled())
    elif (exc := future.exception()) is not None:  # the slot itself broke (e.g. its process died)
        done(task_id, reply.error(exc))
    else:
        done(task_id, future.result())


def _slot_process(conn: Connection, output: Connection) -> None:
    """Body of a process slot: run tasks from the pipe until it closes."""
    # At the descriptor level: what native code writes, and what Python writes just before dying, is read too.
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    task_output.install(1)  # whole lines, stderr's marked: the agent forwards them as they are
    blobs: OrderedDict[bytes, object] = OrderedDict()

    def resolve(digest: bytes) -> object:
        return blobs[digest]

    while True:
        try:
            task_id, payload, digests, uploads = conn.recv()
        except (EOFError, OSError):
            return
        for digest, data in uploads.items():
            blobs[digest] = rebuild(data)
        for digest in digests:  # same LRU order as the feeding thread's mirror
            blobs.move_to_end(digest)
        while len(blobs) > max(_PROCESS_BLOB_CACHE, len(digests)):
            blobs.popitem(last=False)
        conn.send_bytes(execute(payload, task_id, resolve if digests else None))


@dataclass(eq=False)
class _Job:
    task_id: str
    payload: bytes
    blobs: tuple[bytes, ...]
    future: Future[bytes]
    stopped: bool = False


class _ProcessSlot:
    """One slot: a spawned process and the thread that feeds it."""

    def __init__(
        self,
        context: multiprocessing.context.SpawnContext,
        jobs: queue.SimpleQueue[_Job | None],
        closing: threading.Event,
        store: BlobStore,
    ) -> None:
        self._context = context
        self._jobs = jobs
        self._closing = closing
        self._store = store
        self._child_blobs: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self.current: _Job | None = None
        self._start_process()
        self._thread = threading.Thread(target=self._feed, daemon=True, name="skyward-process-slot")
        self._thread.start()

    def _start_process(self) -> None:
        self._child_blobs = OrderedDict()
        ours, theirs = self._context.Pipe()
        self._conn = ours
        output_here, output_there = self._context.Pipe(duplex=False)
        self._output: deque[str] = deque(maxlen=_TAIL_LINES)
        # spawn, never fork: the agent runs casty's transport threads.
        self.process = self._context.Process(target=_slot_process, args=(theirs, output_there), daemon=True)
        self.process.start()
        theirs.close()
        output_there.close()
        self._reader = threading.Thread(
            target=_read_output, args=(output_here, self._output), daemon=True, name="skyward-slot-output"
        )
        self._reader.start()

    def _feed(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.current = job
            try:
                uploads = self._uploads_for(job)
            except BlobMissing as missing:
                result = reply.missing((missing.digest,))
            else:
                try:
                    self._conn.send((job.task_id, job.payload, job.blobs, uploads))
                    result = self._conn.recv_bytes()
                except (EOFError, OSError):
                    result = self._replace(job)
            with self._lock:
                self.current = None
            job.future.set_result(result)
        self.process.kill()

    def _uploads_for(self, job: _Job) -> dict[bytes, bytearray]:
        """The blobs of `job` the child lacks, and the mirror of its cache updated as the child will update it."""
        uploads = {d: self._store.data(d) for d in job.blobs if d not in self._child_blobs}
        for digest in job.blobs:
            self._child_blobs[digest] = None
            self._child_blobs.move_to_end(digest)
        while len(self._child_blobs) > max(_PROCESS_BLOB_CACHE, len(job.blobs)):
            self._child_blobs.popitem(last=False)
        return uploads

    def _replace(self, job: _Job) -> bytes:
        """The process died under `job`: killed by `stop` (cancelled) or crashed. Start a fresh one."""
        self.process.join()
        cancelled = job.stopped
        code = self.process.exitcode
        self._conn.close()
        self._reader.join(timeout=1)  # its last lines (a child it started may hold the pipe: not forever)
        output = tuple(self._output)
        if not self._closing.is_set():
            self._start_process()
        if cancelled:
            return reply.cancelled()
        if code is not None and code < 0:
            return reply.crashed(None, -code, output)
        return reply.crashed(code, None, output)

    def stop(self, task_id: str) -> bool:
        with self._lock:
            job = self.current
            if job is None or job.task_id != task_id:
                return False
            job.stopped = True
            self.process.kill()
            return True


def _read_output(pipe: Connection, tail: deque[str]) -> None:
    """Forward a slot process's output to the agent's, whole lines at a time; the last ones stay in `tail`."""
    pending = b""
    try:
        while data := os.read(pipe.fileno(), 65536):
            *lines, pending = (pending + data).split(b"\n")
            _forward(lines, tail)
    except OSError:
        pass
    finally:
        if pending:
            _forward([pending], tail)
        pipe.close()


def _forward(lines: list[bytes], tail: deque[str]) -> None:
    if not lines:
        return
    tail.extend(line.decode(errors="replace").removeprefix(task_output.STDERR_MARK) for line in lines)
    task_output.forward(b"".join(line + b"\n" for line in lines))


class ProcessSlots:
    """Slots as processes of their own: CPU-bound Python in parallel, and running tasks can be stopped."""

    def __init__(self, concurrency: int, store: BlobStore) -> None:
        self.concurrency = concurrency
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._queued: dict[str, _Job] = {}
        self._closing = threading.Event()
        context = multiprocessing.get_context("spawn")
        self._slots = [_ProcessSlot(context, self._jobs, self._closing, store) for _ in range(concurrency)]

    def submit(self, payload: bytes, task_id: str, blobs: tuple[bytes, ...], done: Done) -> None:
        future: Future[bytes] = LightFuture()
        job = _Job(task_id, payload, blobs, future)
        self._queued[task_id] = job
        future.add_done_callback(functools.partial(_report, self._queued, task_id, done))  # type: ignore[arg-type]
        self._jobs.put(job)

    def cancel(self, task_id: str, stop_running: bool = True) -> bool:
        job = self._queued.get(task_id)
        if job is None:
            return False
        if job.future.cancel():
            return True
        return stop_running and any(slot.stop(task_id) for slot in self._slots)

    def shutdown(self) -> None:
        self._closing.set()
        for slot in self._slots:
            self._jobs.put(None)
            slot.process.kill()
        # What the slots printed and the readers have not forwarded yet is still in their pipes: forward it
        # before the agent exits (a task's reply can overtake its last lines). One bound for all slots: a child a
        # task started may hold a pipe open.
        deadline = time.monotonic() + 1.0
        for slot in self._slots:
            slot._reader.join(timeout=max(0.0, deadline - time.monotonic()))
