"""A webhook receiver on 127.0.0.1 over TLS, written the way the README tells receiver authors to.

It verifies ``X-WalkMe-DIC-Signature`` (HMAC-SHA256 of the body) and answers 401 when it does not
match, drops a batch whose ``Idempotency-Key`` it already stored (answering 200), and can be told to
answer the next requests with an error (429 with Retry-After, 503, 400 with a body) or to store a
batch and then hang up without answering (the lost answer a retry with the same key must survive).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from walkme_dic_dev.httpserver import BackgroundServer


@dataclass
class Scripted:
    remaining: int
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang_up: bool = False


class WebhookReceiver(BackgroundServer):
    thread_name = "webhook-receiver"

    def __init__(self, secret: str, ssl_context: ssl.SSLContext) -> None:
        super().__init__()
        self.secret = secret
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.batches: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> body, in arrival order
            self.requests: list[dict[str, str]] = []  # headers of every request that reached the handler
            self.request_lines: list[str] = []  # "METHOD path?query" of each of them, the query as sent
            self.duplicates = 0
            self.probes = 0
            self.script: list[Scripted] = []

    @property
    def hook(self) -> str:
        return f"{self.url}/hook"

    def fail_next(self, times: int, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self.script.append(Scripted(times, status, body, headers or {}))

    def hang_up_next(self, times: int) -> None:
        """Handle the next ``times`` requests, then close the connection instead of answering."""
        with self._lock:
            self.script.append(Scripted(times, 0, hang_up=True))

    def records(self) -> list[dict[str, Any]]:
        return [record for body in self.batches.values() for record in body["records"]]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.requests.append(dict(request.headers))
            self.request_lines.append(f"{request.method} {request.raw_path}")
            scripted = next((s for s in self.script if s.remaining > 0), None)
            if scripted is not None:
                scripted.remaining -= 1
        if scripted is not None and not scripted.hang_up:
            return web.Response(status=scripted.status, text=scripted.body, headers=scripted.headers)
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-WalkMe-DIC-Signature", "")):
            return web.json_response({"error": "signature does not match"}, status=401)
        payload = json.loads(body)
        with self._lock:
            if request.headers.get("X-WalkMe-DIC-Probe") == "true":
                self.probes += 1
            elif (key := request.headers["Idempotency-Key"]) in self.batches:
                self.duplicates += 1
            else:
                self.batches[key] = payload
        if scripted is not None and request.transport is not None:  # hang up: the answer is lost
            request.transport.close()
        return web.json_response({"ok": True})
