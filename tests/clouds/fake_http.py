"""A small JSON-over-HTTP server on 127.0.0.1 in a thread, for the fakes of cloud APIs.

A fake subclasses `FakeApi` and lists its routes (method, path pattern, handler). Every request is recorded as
``"METHOD /path/pattern"`` in `calls`, so a test can assert the calls a pool made, in order.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]  # the query string, one value per name
    body: Any  # parsed JSON, or None
    headers: dict[str, str]
    match: re.Match[str]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless it is a str (sent as text/plain)


Handler = Callable[[Request], Reply]


class ApiError(Exception):
    """Raised by a handler: answered with `status` and `body`."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


class FakeApi:
    """Serve `routes()` on 127.0.0.1 (a free port) while started; record each call."""

    prefix = ""  # a path prefix every route shares ("/v1")

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.RLock()
        self._routes = [
            (m, re.compile(f"^{self.prefix}{p}$"), re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", p), h)
            for m, p, h in self.routes()
        ]
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-cloud-api")

    def routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def start(self) -> FakeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _dispatch(self, raw: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(raw.path)
        length = int(raw.headers.get("Content-Length") or 0)
        data = raw.rfile.read(length) if length else b""
        body = json.loads(data) if data.strip() else None
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        reply = Reply(404, {"code": "not_found", "message": f"no route {raw.command} {parts.path}"})
        for method, pattern, template, handler in self._routes:
            match = pattern.match(parts.path)
            if method == raw.command and match:
                request = Request(method, parts.path, params, body, dict(raw.headers.items()), match)
                with self.lock:
                    self.calls.append(f"{method} {template}")
                    try:
                        reply = handler(request)
                    except ApiError as error:
                        reply = Reply(error.status, error.body)
                break
        text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        payload = text.encode()
        raw.send_response(reply.status)
        raw.send_header("Content-Type", "text/plain" if isinstance(reply.body, str) else "application/json")
        raw.send_header("Content-Length", str(len(payload)))
        raw.end_headers()
        raw.wfile.write(payload)
