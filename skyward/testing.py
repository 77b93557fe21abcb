"""Helpers for testing skyward plugins: run a plugin in a real (local) pool.

Example (pytest)::

    from skyward.testing import plugin_pool

    def test_my_plugin_sets_the_env():
        with plugin_pool(my_plugin(value="x"), nodes=1) as pool:
            assert pool.broadcast(os.environ.get, "MY_VAR") == ["x"]
            assert pool.image.env["MY_VAR"] == "x"
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from skyward.pool import ComputePool
from skyward.spec import Worker


@contextmanager
def plugin_pool(
    *plugins: object, nodes: int = 1, concurrency: int = 1, **options: Any
) -> Iterator[ComputePool]:
    """A `ComputePool` of `nodes` local worker processes with `plugins` (in this order), for the ``with`` block.

    The plugins' hooks run exactly as in a user's pool: ``image_transform`` builds ``pool.image``, the nodes are
    started from it, and ``around_client`` is active inside the block. `options` go to `ComputePool` (e.g.
    ``image=sky.Image(env=...)``, ``provider=...``). Assert on what tasks see on the nodes (``pool.broadcast``,
    ``os.getpid()``), not only on the client.
    """
    with ComputePool(nodes=nodes, worker=Worker(concurrency=concurrency), plugins=plugins, **options) as pool:
        yield pool
