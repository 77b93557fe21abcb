"""Resolving task futures on a thread of their own, never on the I/O loop.

Results are unpickled here and the futures' callbacks (user code, joblib's, which pickle and dispatch the next
batch) run here, so a slow callback never stalls the transport. Outcomes are delivered in the order they were
handed over.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import InvalidStateError
from typing import Any

from skyward import reply as replies
from skyward.placement import Task

_SHUTDOWN = object()

#: One outcome to deliver: ``(task, where, outcome)``, a reply from node `where` or an error.
Delivered = tuple[Task, str, "replies.Reply | BaseException"]


class Delivery:
    """A thread that resolves futures with the outcomes handed to it, in order."""

    def __init__(self) -> None:
        self._outcomes: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._deliver, name="skyward-results", daemon=True)
        self._thread.start()

    def put_all(self, outcomes: Sequence[Delivered]) -> None:
        """Resolve each task's future with its outcome, in order; one hand-over (and one wake-up of the thread)
        for the whole batch."""
        if outcomes:
            self._outcomes.put(outcomes)

    def close(self, timeout: float = 5) -> None:
        self._outcomes.put(_SHUTDOWN)
        self._thread.join(timeout=timeout)

    def _deliver(self) -> None:
        get = self._outcomes.get
        while True:
            batch = get()
            if batch is _SHUTDOWN:
                return
            for task, where, outcome in batch:
                _resolve(task, where, outcome)


def _resolve(task: Task, where: str, outcome: replies.Reply | BaseException) -> None:
    future = task.future
    if future.done():
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        elif isinstance(outcome, replies.Cancelled):
            future._cancel_now()  # its node dropped it: nothing to ask
        else:
            try:  # unpickled here, off the I/O loop
                if isinstance(outcome, replies.Error):
                    raise outcome.exception(where)
                value = outcome.value()  # type: ignore[union-attr]
            except BaseException as exc:  # noqa: BLE001 - the task's own error, or an unreadable result
                future.set_exception(exc)
            else:
                future.set_result(value)
    except InvalidStateError:  # cancelled by the user in the meantime
        pass
