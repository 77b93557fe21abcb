"""The node agent's logic: deduplicate and run tasks, answer cancellations and heartbeats.

Who may send it anything was settled before a message gets here: the transport accepts only the pool's client
(mutual TLS, see `skyward.transport`), so every message is authentic.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from skyward import reply as replies
from skyward.blobs import BlobStore
from skyward.worker.slots import Slots

Reply = Callable[[bytes], None]  # answers the client with a reply's bytes (`skyward.reply`)

REPLY_CACHE_BYTES = 256 * 1024 * 1024
# Ids of tasks whose reply was evicted: a few MB at most, and far more than a client ever sends again.
_EVICTED_IDS = 65536
# Ids cancelled before their task arrived, remembered so it is refused when it does (as many, as cheap).
_REFUSED_IDS = 65536


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
        self._refused: OrderedDict[str, None] = OrderedDict()
        # In flight: whoever waits for its reply (the first sender, and any that sent its id again meanwhile).
        self._running: dict[str, list[Reply]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._slot_done_here = self._slot_done  # one bound method for every task
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
        if self._refused and self._refused.pop(task_id, False) is None:  # cancelled before it came
            reply(replies.cancelled())
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
        self._running[task_id] = [reply]  # before submitting: a slot may answer at once
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._slots.submit(payload, task_id, blobs, self._slot_done_here)

    def _slot_done(self, task_id: str, result: bytes) -> None:
        """A slot ended a task (ran it, or withdrew it), in whichever thread it did."""
        if threading.get_ident() == self._loop_thread:  # a slot that runs on the loop (simulated): no wake-up
            self._finish(task_id, result)
            return
        try:
            self._loop.call_soon_threadsafe(self._finish, task_id, result)  # type: ignore[union-attr]
        except RuntimeError:  # the agent's loop is closed (it is stopping): nobody waits for this reply
            pass

    def _finish(self, task_id: str, result: bytes) -> None:
        waiting = self._running.pop(task_id, None)
        if waiting is None:  # answered already (a slot must answer once; this guards the reply cache)
            return
        # Only outcomes are remembered: a task withdrawn, lacking blobs or whose process died may come again.
        if replies.is_outcome(result):
            self._remember(task_id, result)
        for reply in waiting:
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

        A task not here yet (its cancellation overtook it: a task sent with uploads goes after them) is
        refused when it comes, answered `reply.Cancelled`. Answers how many will not run (or not finish) here:
        the client's `TaskFuture.cancel` is exact on it.
        """
        self._contact()
        cancelled = 0
        for task_id in task_ids:
            if task_id in self._running:
                cancelled += self._slots.cancel(task_id, stop_running)
            elif task_id not in self._done and task_id not in self._evicted:
                self._refused[task_id] = None
                cancelled += 1
        while len(self._refused) > _REFUSED_IDS:
            self._refused.popitem(last=False)
        return cancelled

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
