"""Run one serialized task in a slot (a thread of the agent, or a process of its own) and serialize the outcome.

Importable on its own so process slots (spawned, not forked: casty's transport threads live in the agent)
can run it without importing casty.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from skyward import reply
from skyward.blobs import BlobMissing
from skyward.payload import decode_task
from skyward.worker import task_output

# Unpickling a task imports the modules it refers to. Two thread slots importing a package with circular
# imports at once (scikit-learn's) can see it half initialized: "cannot import name ... from partially
# initialized module". Decoding one task at a time per process avoids that; it costs microseconds per task.
_DECODING = threading.Lock()


def execute(payload: bytes, task_id: str, resolve: Callable[[bytes], object] | None) -> bytes:
    """Decode, run and encode one task. Never raises: every failure becomes an error reply.

    `resolve` turns the digest of a blob the task refers to into its object; ``None`` for a task sent as
    referring to none (see `skyward.payload.decode_task`)."""
    try:
        with _DECODING:
            task = decode_task(payload, resolve)
    except BlobMissing as missing:  # evicted since the agent checked: the client uploads it again
        return reply.missing((missing.digest,))
    except BaseException as exc:  # noqa: BLE001  (malformed or hostile bytes, or a module the node lacks)
        return reply.error(exc)
    try:
        value = task.fn(*task.args, **task.kwargs)
    except BaseException as exc:  # noqa: BLE001  (SystemExit from user code must not take the slot down either)
        # The first frame is this function: the user's traceback starts below it.
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc = exc.with_traceback(exc.__traceback__.tb_next)
        return reply.error(exc)
    finally:
        task_output.end_of_task()
    return reply.ok(value, task_id)
