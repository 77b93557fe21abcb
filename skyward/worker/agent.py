"""The node agent's logic: authenticate, deduplicate and run tasks, answer cancellations and heartbeats."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

from skyward import wire
from skyward.blobs import BlobStore
from skyward.worker.slots import Slots

Reply = Callable[[bytes], None]


class TaskRunner:
    """Implements `skyward.transport.NodeHandler` on the agent's event loop.

    casty delivers at most once, so the client may send a task again after a lost reply. Every task has an id:
    a repeated id joins the task in flight or gets the cached reply, and never runs twice.
    """

    def __init__(self, secret: bytes, slots: Slots, blobs: BlobStore, cache_size: int = 4096) -> None:
        self._secret = secret
        self._slots = slots
        self._blobs = blobs
        self._cache_size = cache_size
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._running: dict[str, tuple[Future[bytes], list[Reply]]] = {}
        self.last_contact = time.monotonic()

    def _authentic(self, secret: bytes) -> bool:
        ok = hmac.compare_digest(secret, self._secret)
        if ok:
            self.last_contact = time.monotonic()
        return ok

    def run(self, secret: bytes, task_id: str, payload: bytes, blobs: tuple[bytes, ...], reply: Reply) -> None:
        if not self._authentic(secret):
            # Refused before the payload is looked at, let alone unpickled.
            reply(wire.reply_error(PermissionError("refused: the message does not carry this pool's secret")))
            return
        if task_id in self._done:
            reply(self._done[task_id])
            return
        if task_id in self._running:
            self._running[task_id][1].append(reply)
            return
        missing = tuple(digest for digest in blobs if digest not in self._blobs)
        if missing:  # answered before anything runs; not cached: the task comes again with its blobs
            reply(wire.reply_missing(missing))
            return
        future = self._slots.submit(payload, task_id, blobs)
        self._running[task_id] = (future, [reply])
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._finish, task_id, f))

    def _finish(self, task_id: str, future: Future[bytes]) -> None:
        if future.cancelled():
            result = wire.reply_cancelled()
        elif (exc := future.exception()) is not None:  # the slot itself broke (e.g. a process slot died)
            result = wire.reply_error(exc)
        else:
            result = future.result()
        _, replies = self._running.pop(task_id)
        # Only outcomes are remembered: a task withdrawn, lacking blobs or whose process died may come again.
        outcome = wire.missing_blobs(result) is None and wire.crash_of(result) is None
        if outcome and not wire.is_cancelled(result):
            self._done[task_id] = result
        while len(self._done) > self._cache_size:
            self._done.popitem(last=False)
        for reply in replies:
            reply(result)

    def cancel(self, secret: bytes, task_ids: tuple[str, ...], stop_running: bool = True) -> int:
        """Cancel the listed tasks: queued ones always, running ones (process slots only) when `stop_running`.

        Answers how many were cancelled.
        """
        if not self._authentic(secret):
            return 0
        return sum(
            1 for task_id in task_ids if task_id in self._running and self._slots.cancel(task_id, stop_running)
        )

    def put_blob(self, secret: bytes, digest: bytes, offset: int, total: int, chunk: bytes) -> bool:
        """Store a piece of an uploaded blob; answers True once the blob is whole."""
        if not self._authentic(secret):
            raise PermissionError("refused: the message does not carry this pool's secret")
        return self._blobs.put_chunk(digest, offset, total, chunk)

    def heartbeat(self, secret: bytes) -> bool:
        return self._authentic(secret)

    @property
    def busy(self) -> int:
        return len(self._running)
