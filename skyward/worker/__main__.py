"""Entry point of the node agent: ``python -m skyward.worker``.

Protocol with whoever started it (the Local provider, or an SSH session):
- stdin, first line: the launch configuration, `skyward.agent_config.AgentConfig` as its ``encode`` writes it
  (the node's name, slots, lease, and this node's own TLS certificate and key and the client CA's certificate:
  the pool's secret never reaches a node).
- stdout, once listening: ``SKYWARD-READY {"port": p, "pid": pid}``. Afterwards stdout carries what tasks print.
- The agent exits when stdin closes (its client is gone) or when no message from its client arrived for
  ``lease`` seconds (the client hangs or the link is cut).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from skyward import transport
from skyward.agent_config import AgentConfig, AgentConfigError
from skyward.blobs import BlobStore
from skyward.volumes.client import VolumeError
from skyward.worker import READY_PREFIX, task_output
from skyward.worker.agent import REPLY_CACHE_BYTES, TaskRunner
from skyward.worker.native_threads import limit_native_threads
from skyward.worker.slots import make_slots
from skyward.worker.thread_warnings import install as per_thread_warning_filters

if TYPE_CHECKING:
    from skyward.volumes.mount import MountedVolumes

logger = logging.getLogger("skyward.worker")

BLOB_CACHE_BYTES = 2 << 30  # the blob store's default size


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    for _ in sys.stdin:
        pass
    loop.call_soon_threadsafe(stop.set)


async def _watch_lease(runner: TaskRunner, lease: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(min(1.0, lease / 4))
        if time.monotonic() - runner.last_contact > lease:
            # No handler configured on a node: logging's last resort writes it to stderr, forwarded to the client.
            logger.warning("skyward worker: no word from the client for %.0fs, exiting", lease)
            stop.set()


async def _main(config: AgentConfig, announced_pid: int) -> None:
    node, lease = config.node, config.lease
    os.environ["SKYWARD_NODE"] = node
    blobs = BlobStore(config.blob_cache_bytes if config.blob_cache_bytes is not None else BLOB_CACHE_BYTES)
    slots = make_slots(config.executor, config.concurrency, blobs)
    reply_cache = config.reply_cache_bytes if config.reply_cache_bytes is not None else REPLY_CACHE_BYTES
    runner = TaskRunner(slots, blobs, reply_cache)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True, name="stdin-watch").start()
    bind = transport.bind_address(config.bind)
    port = transport.free_port(bind)

    def ready() -> None:
        # `threads`: its slots' native thread limit (OMP_NUM_THREADS, as chosen or as the user set it), shown
        # by the dashboard.
        threads = os.environ.get("OMP_NUM_THREADS")
        print(READY_PREFIX + json.dumps({"port": port, "pid": announced_pid, "threads": threads}), flush=True)
        task_output.install()  # from now on: whole lines, stderr's marked (the ready line went out as it is)

    server = asyncio.create_task(transport.serve(node, port, runner, ready, config.tls, bind))
    lease_task = asyncio.create_task(_watch_lease(runner, lease, stop))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([server, stopped], return_when=asyncio.FIRST_COMPLETED)
    lease_task.cancel()
    slots.shutdown()
    if server.done() and server.exception() is not None:
        raise server.exception()  # type: ignore[misc]


def _mount_volumes(config: AgentConfig) -> MountedVolumes | None:
    """Mount the pool's volumes before the ready line, so they are there for the first task; exit saying why
    when one cannot be mounted (the provider shows this output in the pool's start error)."""
    if not config.volumes:
        return None
    from skyward.volumes.mount import mount_volumes, node_report  # ctypes & co. only on nodes with volumes

    try:
        return mount_volumes(config.volumes, node_report)
    except (VolumeError, OSError) as exc:
        sys.exit(f"skyward worker: {exc}")


def _volumes_need_mount(config: AgentConfig) -> bool:
    from skyward.volumes.choose import needs_mount  # copies need no root: no sudo for them

    return needs_mount(config.volumes)


def main() -> None:
    line = sys.stdin.readline()
    if not line:
        sys.exit("skyward worker: expected a JSON configuration line on stdin")
    try:
        config = AgentConfig.decode(line)
    except AgentConfigError as exc:
        sys.exit(f"skyward worker: {exc}")
    if config.volumes and os.geteuid() != 0 and _volumes_need_mount(config):
        from skyward.volumes.sudo import relay_through_sudo  # mounting needs root (never returns)

        relay_through_sudo(line)
    serve(config, _mount_volumes(config))  # first: unshare() needs this process to be single threaded still


def serve(config: AgentConfig, volumes: MountedVolumes | None, announced_pid: int | None = None) -> None:
    """Serve tasks until the client is gone, then release `volumes` and exit the process. `announced_pid`: the
    pid of the ready line, the process the provider started and stops (default: this one)."""
    # Before any task imports numpy & co.: their thread pools are sized once, at import.
    limit_native_threads(config.nodes_on_machine, config.concurrency)
    if config.executor == "thread":  # concurrent tasks' catch_warnings must not mix
        per_thread_warning_filters()
    try:
        asyncio.run(_main(config, os.getpid() if announced_pid is None else announced_pid))
    finally:
        if volumes is not None:
            volumes.release()  # s3fs finishes uploads of closed files, then unmounts
        sys.stdout.flush()
    # Slot threads may still be running user code; they must not keep the node alive.
    os._exit(0)


if __name__ == "__main__":
    main()
