"""The node agent's logic: deduplicate and run tasks, answer cancellations and heartbeats.

Who may send it anything was settled before a message gets here: the transport accepts only the pool's client
(mutual TLS, see `skyward.transport`), so every message is authentic.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from skyward import reply as replies
from skyward.blobs import BlobStore
from skyward.worker.slots import Slots

Reply = Callable[[bytes], None]  # answers the client with a reply's bytes (`skyward.reply`)

REPLY_CACHE_BYTES = 256 * 1024 * 1024
# Ids of tasks whose reply was evicted: a few MB at most, and far more than a client ever sends again.
_EVICTED_IDS = 65536


class TaskRunner:
    """Implements `skyward.transport.NodeHandler` on the agent's event loop.

    casty delivers at most once, so the client may send a task again after a lost reply. Every task has an id:
    a repeated id joins the task in flight or gets the cached reply, and never runs twice.

    The reply cache holds at most `cache_bytes` (oldest evicted first). A task id whose reply was evicted is not
    run again when it comes back: it is answered with an error saying so. Rule: a task runs at most once per node,
    because only its owner can say whether running it twice is safe. The client sends an id again only after
    losing a reply, moments later, so an eviction in between takes `cache_bytes` of newer results; the error then
    reaches the caller's future instead of a second run. Evicted ids are remembered up to `_EVICTED_IDS`, beyond
    which the oldest are forgotten.
    """

    def __init__(self, slots: Slots, blobs: BlobStore, cache_bytes: int = REPLY_CACHE_BYTES) -> None:
        self._slots = slots
        self._blobs = blobs
        self._cache_bytes = cache_bytes
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._done_bytes = 0
        self._evicted: OrderedDict[str, None] = OrderedDict()
        # In flight: its slot's future, then whoever waits for its reply (the first sender, and any that sent
        # its id again meanwhile).
        self._running: dict[str, list[Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.last_contact = time.monotonic()

    def _contact(self) -> None:
        self.last_contact = time.monotonic()

    def run(self, task_id: str, payload: bytes, blobs: tuple[bytes, ...], reply: Reply) -> None:
        self._contact()
        if task_id in self._done:
            reply(self._done[task_id])
            return
        if task_id in self._running:
            self._running[task_id].append(reply)
            return
        if task_id in self._evicted:
            reply(replies.error(RuntimeError(
                f"task {task_id} already ran on this node and its reply was evicted from the node's reply cache "
                f"({self._cache_bytes / 2**20:.0f} MiB of newer results since); it is not run twice"
            )))  # fmt: skip
            return
        missing = tuple(digest for digest in blobs if digest not in self._blobs) if blobs else ()
        if missing:  # answered before anything runs; not cached: the task comes again with its blobs
            reply(replies.missing(missing))
            return
        future = self._slots.submit(payload, task_id, blobs)
        self._running[task_id] = [future, reply]
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        future.add_done_callback(functools.partial(self._slot_done, task_id))

    def _slot_done(self, task_id: str, future: Future[bytes]) -> None:
        """The slot's future is done, in whichever thread finished it."""
        if threading.get_ident() == self._loop_thread:  # a slot that runs on the loop (simulated): no wake-up
            self._finish(task_id, future)
            return
        try:
            self._loop.call_soon_threadsafe(self._finish, task_id, future)  # type: ignore[union-attr]
        except RuntimeError:  # the agent's loop is closed (it is stopping): nobody waits for this reply
            pass

    def _finish(self, task_id: str, future: Future[bytes]) -> None:
        if future.cancelled():
            result = replies.cancelled()
        elif (exc := future.exception()) is not None:  # the slot itself broke (e.g. a process slot died)
            result = replies.error(exc)
        else:
            result = future.result()
        waiting = self._running.pop(task_id)
        # Only outcomes are remembered: a task withdrawn, lacking blobs or whose process died may come again.
        if replies.is_outcome(result):
            self._remember(task_id, result)
        for reply in waiting[1:]:
            reply(result)

    def _remember(self, task_id: str, result: bytes) -> None:
        self._done[task_id] = result
        self._done_bytes += len(result)
        while self._done_bytes > self._cache_bytes:  # a reply larger than the whole cache is not kept at all
            evicted_id, evicted = self._done.popitem(last=False)
            self._done_bytes -= len(evicted)
            self._evicted[evicted_id] = None
        while len(self._evicted) > _EVICTED_IDS:
            self._evicted.popitem(last=False)

    def cancel(self, task_ids: tuple[str, ...], stop_running: bool = True) -> int:
        """Cancel the listed tasks: queued ones always, running ones (process slots only) when `stop_running`.

        Answers how many were cancelled.
        """
        self._contact()
        return sum(
            1
            for task_id in task_ids
            if task_id in self._running and self._slots.cancel(task_id, stop_running)
        )

    def put_blob(self, digest: bytes, offset: int, total: int, chunk: bytes) -> bool:
        """Store a piece of an uploaded blob; answers True once the blob is whole."""
        self._contact()
        return self._blobs.put_chunk(digest, offset, total, chunk)

    def heartbeat(self) -> bool:
        self._contact()
        return True

    @property
    def busy(self) -> int:
        return len(self._running)

    @property
    def cached_bytes(self) -> int:
        """Bytes of replies the cache holds now."""
        return self._done_bytes
