"""The dashboard's web server: aiohttp on the pool's I/O loop, on 127.0.0.1 only, every request with its token.

The page and its data need the random token that `pool.dashboard_url` carries (401 without one, 403 with a
wrong one), so another local account cannot read it even though the port is open on loopback. The page's
script and style are served inline with it, and its Content-Security-Policy lets it reach nothing but this
server: it works offline and leaks the token to no one.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from skyward.bootstrap import progress
from skyward.dashboard import page
from skyward.dashboard.snapshot import Watch, build
from skyward.ioloop import shared_loop

if TYPE_CHECKING:
    from aiohttp import web

    from skyward.pool import ComputePool

logger = logging.getLogger("skyward.dashboard")

HOST = "127.0.0.1"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
}


def _aiohttp() -> Any:
    try:
        from aiohttp import web
    except ImportError as exc:
        raise ImportError(
            "the dashboard needs aiohttp, in skyward's optional extra 'dashboard': install skyward[dashboard] "
            "(e.g. `uv pip install 'skyward[dashboard] @ <path or wheel>'`), or start the pool without "
            "dashboard="
        ) from exc
    return web


class Dashboard:
    """One pool's dashboard server; `start` it at pool entry and `close` it at the end of the block."""

    def __init__(self, pool: ComputePool, port: int = 0) -> None:
        self._web = _aiohttp()
        self._pool = pool
        self._port = port
        self.token = secrets.token_urlsafe(24)
        self.watch = Watch(pool.cluster.pool_id)
        self._runner: web.AppRunner | None = None
        self._sampler: Future[None] | None = None
        self.url = ""

    def start(self) -> str:
        """Listen (on a free port unless one was given); answers the page's URL, token included."""
        io = shared_loop()
        port = io.run(self._start()).result(timeout=30)
        progress.listeners.add(self.watch.on_bootstrap)
        self._sampler = io.run(self._sample_every_second())
        self.url = f"http://{HOST}:{port}/?token={self.token}"
        logger.info("dashboard of pool %s at %s", self._pool.cluster.pool_id, self.url)
        return self.url

    def close(self) -> None:
        """Stop serving; the port is free when this returns."""
        progress.listeners.discard(self.watch.on_bootstrap)
        io = shared_loop()
        if self._sampler is not None:
            io.loop.call_soon_threadsafe(self._sampler.cancel)
            self._sampler = None
        runner, self._runner = self._runner, None
        if runner is not None:
            io.run(runner.cleanup()).result(timeout=30)

    async def _start(self) -> int:
        aio = self._web
        app = aio.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/snapshot", self._snapshot)
        runner = aio.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = aio.TCPSite(runner, HOST, self._port, reuse_address=False)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        return int(runner.addresses[0][1])

    async def _sample_every_second(self) -> None:
        while True:
            self.watch.sample(self._pool)
            await asyncio.sleep(1.0)

    @property
    def _guard(self) -> Any:
        aio = self._web

        @aio.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            given = request.query.get("token")
            if not given:
                raise aio.HTTPUnauthorized(text="the dashboard's URL carries a token: use pool.dashboard_url")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise aio.HTTPForbidden(text="wrong token")
            response: web.StreamResponse = await handler(request)
            response.headers.update(_HEADERS)
            return response

        return guard

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return self._web.Response(text=page.html(), content_type="text/html")

    def _encode(self, since: float) -> str:
        return json.dumps(build(self._pool, self.watch, since), separators=(",", ":"))

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            since = 0.0
        # Off the loop's thread: a first load (thousands of task records) takes tens of milliseconds.
        body = await asyncio.to_thread(self._encode, since)
        return self._web.Response(text=body, content_type="application/json")
