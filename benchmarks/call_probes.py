"""Timestamps of one call's stages, on the client and on its node, for `profile_call.py`.

Nothing in skyward is changed for this: the stage functions are wrapped from outside. On the client, in this
process; on a node, by a task (`install_node_probes`, sent with `pool.broadcast`) that wraps the agent's own
functions in its process (thread slots only: a process slot runs `execute` in another process). Stamps are
`time.perf_counter_ns()`, CLOCK_MONOTONIC on Linux, one clock for every process of the machine: client and node
stamps of one call can be subtracted. `profile_call.py` reports the round trip without probes, measured in
rounds alternating with the probed calls, beside the probed one.

This module travels to nodes by value (it is registered with cloudpickle), so nodes need not import it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: Stamps of the call in progress on the client (one call at a time), and every call's by task id.
current: dict[str, int] = {}
by_id: dict[str, dict[str, int]] = {}


def stamp(name: str, into: dict[str, int] | None = None) -> None:
    (current if into is None else into)[name] = time.perf_counter_ns()


def new_call() -> dict[str, int]:
    """Start the stamps of the next call (the caller stamps ``call`` just before sending it)."""
    global current
    current = {}
    return current


def _timed(fn: Callable[..., Any], before: str, after: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stamp(before)
        try:
            return fn(*args, **kwargs)
        finally:
            stamp(after)

    return wrapper


def install_client_probes() -> Callable[[], None]:
    """Wrap the client's stage functions in this process; returns the function that unwraps them."""
    from skyward import delivery, pool, transport

    saved = [
        (pool, "encode_task", pool.encode_task),
        (transport.NodeLink, "run", transport.NodeLink.run),
        (transport.NodeLink, "put_blob", transport.NodeLink.put_blob),
        (delivery, "_resolve", delivery._resolve),
    ]
    run, put_blob, resolve = transport.NodeLink.run, transport.NodeLink.put_blob, delivery._resolve

    def probed_run(self: Any, task_id: str, payload: bytes, blobs: tuple[bytes, ...] = ()) -> Any:
        stamps = by_id.setdefault(task_id, current)
        stamp("send", stamps)
        # A coroutine (casty's link) or a future (a link may answer one): either way a future of this loop,
        # whose completion is the moment the reply's bytes are here.
        sent = asyncio.ensure_future(run(self, task_id, payload, blobs))
        sent.add_done_callback(lambda _: stamp("reply_in", stamps))
        return sent

    async def probed_put_blob(self: Any, digest: bytes, data: bytes) -> None:
        stamps = current
        stamps.setdefault("upload_start", time.perf_counter_ns())
        try:
            await put_blob(self, digest, data)
        finally:
            stamp("upload_end", stamps)

    def probed_resolve(task: Any, where: str, outcome: Any) -> None:
        stamps = by_id.get(task.id, {})
        stamp("resolve_start", stamps)
        try:
            resolve(task, where, outcome)
        finally:
            stamp("resolve_end", stamps)

    pool.encode_task = _timed(pool.encode_task, "enc_start", "enc_end")  # type: ignore[assignment]
    transport.NodeLink.run = probed_run  # type: ignore[method-assign]
    transport.NodeLink.put_blob = probed_put_blob  # type: ignore[method-assign]
    delivery._resolve = probed_resolve

    def uninstall() -> None:
        for owner, name, original in saved:
            setattr(owner, name, original)

    return uninstall


# --- the node's side: these run on the node, in its agent's process ---------------------------------------------

_NODE_STATE = "_skyward_call_probes"  # a module of stamps in the node's sys.modules: survives between tasks


def install_node_probes() -> int:
    """On a node (as a task): wrap the agent's stage functions; returns the agent's process id.

    Stamps per task id: ``node_in`` (the actor handed the message to the agent), ``exec_start`` (a slot thread
    began), ``decode_end``, ``ok_start`` / ``ok_end`` (the reply's encoding) and ``tell`` (the reply handed to
    casty, on the agent's loop).
    """
    import os
    import types

    import skyward.worker.execute as execute_module
    from skyward import reply, transport
    from skyward.worker import slots

    if _NODE_STATE in sys.modules:
        return os.getpid()
    state = types.ModuleType(_NODE_STATE)
    stamps: dict[str, dict[str, int]] = {}
    local = threading.local()
    state.stamps = stamps  # type: ignore[attr-defined]
    state.enabled = True  # type: ignore[attr-defined]
    sys.modules[_NODE_STATE] = state

    def mark(name: str, task_id: str | None = None) -> None:
        key = task_id if task_id is not None else getattr(local, "task_id", None)
        if key is not None and state.enabled:  # type: ignore[attr-defined]
            stamps.setdefault(key, {})[name] = time.perf_counter_ns()

    served = transport._served
    if served is None:
        raise RuntimeError("call_probes: this process serves no node (a process slot?)")
    handler = served.handler
    run = handler.run  # the bound method: the instance attribute set below shadows it

    def probed_run(
        task_id: str, payload: bytes, blobs: tuple[bytes, ...], tell: Callable[[bytes], None]
    ) -> None:
        mark("node_in", task_id)

        def probed_tell(data: bytes) -> None:
            mark("tell", task_id)
            tell(data)

        run(task_id, payload, blobs, probed_tell)

    execute, decode_task, ok = slots.execute, execute_module.decode_task, reply.ok

    def probed_execute(payload: bytes, task_id: str, resolve: Callable[[bytes], object]) -> bytes:
        local.task_id = task_id
        mark("exec_start")
        try:
            return execute(payload, task_id, resolve)
        finally:
            local.task_id = None

    def probed_decode(*args: Any, **kwargs: Any) -> Any:
        try:
            return decode_task(*args, **kwargs)
        finally:
            mark("decode_end")

    def probed_ok(value: object, task_id: str) -> bytes:
        mark("ok_start", task_id)
        try:
            return ok(value, task_id)
        finally:
            mark("ok_end", task_id)

    handler.run = probed_run
    slots.execute = probed_execute
    execute_module.decode_task = probed_decode
    reply.ok = probed_ok
    return os.getpid()


def enable_node_probes(on: bool) -> None:
    """On a node (as a task): take stamps (True) or only pass calls through (False)."""
    sys.modules[_NODE_STATE].enabled = on  # type: ignore[attr-defined]


def node_stamps() -> dict[str, dict[str, int]]:
    """On a node (as a task): every task's stamps so far."""
    state = sys.modules.get(_NODE_STATE)
    return dict(state.stamps) if state is not None else {}  # type: ignore[attr-defined]
