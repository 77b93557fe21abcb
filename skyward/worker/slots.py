"""The node's slots: a thread pool or a process pool of `concurrency` workers."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

from skyward.spec import ExecutorKind
from skyward.worker.execute import execute


class Slots:
    """Runs serialized tasks on `concurrency` threads or processes; queued ones can be cancelled."""

    def __init__(self, kind: ExecutorKind, concurrency: int) -> None:
        self.kind = kind
        self.concurrency = concurrency
        self._executor: Executor
        if kind == "process":
            # spawn, never fork: the agent runs casty's transport threads.
            self._executor = ProcessPoolExecutor(concurrency, mp_context=multiprocessing.get_context("spawn"))
        else:
            self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="skyward-slot")

    def submit(self, payload: bytes, task_id: str) -> Future[bytes]:
        return self._executor.submit(execute, payload, task_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if isinstance(self._executor, ProcessPoolExecutor):
            # shutdown(wait=False) leaves running children behind; the agent is going away, so are they.
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.terminate()
