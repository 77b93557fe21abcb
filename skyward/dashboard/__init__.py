"""The live dashboard of a pool (`sky.ComputePool(..., dashboard=True)`): a page on 127.0.0.1 showing its
nodes, a task stream, throughput and utilisation, calls in progress and node provisioning, updated each second.

- `skyward.dashboard.server`: the aiohttp server on the pool's I/O loop, token-guarded;
- `skyward.dashboard.snapshot`: the JSON the page polls, built from `pool.stats`;
- `skyward.dashboard.page` and ``static/``: the page, plain JavaScript and SVG (no CDN, works offline).

aiohttp is in the optional extra ``skyward[dashboard]``.
"""

from __future__ import annotations

from skyward.dashboard.server import Dashboard

__all__ = ["Dashboard", "check_dashboard"]


def check_dashboard(value: bool | int) -> int | None:
    """The port to serve on for ``ComputePool(dashboard=value)``: 0 (a free one) for ``True``, ``None`` for
    ``False``; a `ValueError` for anything but a bool or a port number."""
    if value is True or value is False:
        return 0 if value else None
    if not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"dashboard must be True, False or a port number (1-65535), got {value!r}")
    return value
