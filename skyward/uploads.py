"""Sending one task to its node: the large arguments it needs first (once per node), then the task itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skyward import reply as replies
from skyward.errors import NodeLost
from skyward.placement import NodeSlots, Task

if TYPE_CHECKING:
    from skyward.pool_stats import PoolStats


@dataclass
class TransferStats:
    """What the client sent to nodes, for benchmarks and curiosity (`pool.stats`)."""

    tasks_sent: int = 0
    task_bytes: int = 0
    blobs_sent: int = 0
    blob_bytes: int = 0


async def run_with_blobs(node: NodeSlots, task: Task, stats: PoolStats) -> replies.Reply:
    """Run `task` on `node` (on the I/O loop) and decode its reply; link errors propagate."""
    digests = tuple(task.blobs)
    link = node.link
    for _ in range(3):  # a node may evict a blob between our upload and the task: upload again
        if task.blobs:
            await _upload_blobs(node, task, stats)
        stats.tasks_sent += 1
        stats.task_bytes += len(task.payload)
        stats.nodes[node.index].bytes_out += len(task.payload)
        data = await link.run(task.id, task.payload, digests)
        stats.nodes[node.index].bytes_in += len(data)
        reply = replies.decode(data)
        if not isinstance(reply, replies.MissingBlobs):
            return reply
        node.blobs.difference_update(reply.digests)
    raise NodeLost(
        f"node {node.name} keeps evicting the arguments of task {task.id}: its blob cache is too small"
    )


async def _upload_blobs(node: NodeSlots, task: Task, stats: PoolStats) -> None:
    """Upload the blobs of `task` that `node` lacks; concurrent tasks needing the same blob share one upload."""
    loop = asyncio.get_running_loop()
    for digest, data in task.blobs.items():  # serialized at submit: the argument as it was then
        while digest not in node.blobs:
            pending = node.uploads.get(digest)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            upload: asyncio.Future[None] = loop.create_future()
            node.uploads[digest] = upload
            try:
                await node.link.put_blob(digest, data)
            except BaseException as exc:
                upload.set_exception(exc)
                upload.exception()  # retrieved: waiters see it through their own await
                raise
            else:
                node.blobs.add(digest)
                stats.blobs_sent += 1
                stats.blob_bytes += len(data)
                stats.nodes[node.index].bytes_out += len(data)
                upload.set_result(None)
            finally:
                node.uploads.pop(digest, None)
