"""A fault-injecting HTTP reverse proxy on 127.0.0.1, in front of any of the test servers.

Rules set at runtime answer matching requests with an error (503 SlowDown, 503 ServerBusy,
429 with Retry-After, 500…) a given number of times, or forward them and cut the connection after
N bytes of the response body, or hold them until the test opens a gate (uploads kept on the wire).
Everything else is forwarded unchanged (method, path, query, headers including Host, body), so signed
requests (SigV4, Azure SharedKey) still validate upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from walkme_dic_dev.httpserver import BackgroundServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "content-length"}


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    query: str
    remaining: int
    status: int = 503
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None
    gate: threading.Event | None = None
    hold_seconds: float = 30

    def matches(self, request: web.Request) -> bool:
        return (self.remaining > 0 and self.method in ("*", request.method)
                and bool(self.path.search(request.path)) and self.query in request.query_string)


class FaultProxy(BackgroundServer):
    """``proxy = FaultProxy(upstream_url); url = proxy.start()``; point a client at ``url``."""

    thread_name = "fault-proxy"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str, str]] = []
        self.injected = 0
        self.holding = 0
        self._lock = threading.Lock()

    def fail(self, method: str, path: str, times: int, status: int, body: str = "",
             headers: dict[str, str] | None = None, query: str = "") -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of forwarding them."""
        with self._lock:
            self.rules.append(Rule(method, re.compile(path), query, times, status, body.encode(), headers or {}))

    def cut(self, method: str, path: str, after_bytes: int, times: int = 1, query: str = "") -> None:
        """Forward the next ``times`` matching requests but drop the connection after ``after_bytes`` of body."""
        with self._lock:
            self.rules.append(Rule(method, re.compile(path), query, times, cut_after=after_bytes))

    def hold(self, method: str, path: str, times: int, query: str = "", seconds: float = 30) -> threading.Event:
        """Keep the next ``times`` matching requests waiting (``holding`` counts them) until the returned gate is
        set, or ``seconds`` have passed; then forward them unchanged."""
        gate = threading.Event()
        with self._lock:
            self.rules.append(Rule(method, re.compile(path), query, times, gate=gate, hold_seconds=seconds))
        return gate

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        return app

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.seen.append((request.method, request.path, request.query_string))
            rule = next((r for r in self.rules if r.matches(request)), None)
            if rule is not None:
                rule.remaining -= 1
                self.injected += 1
        body = await request.read()
        if rule is not None and rule.gate is not None:
            await self._wait(rule.gate, rule.hold_seconds)
        elif rule is not None and rule.cut_after is None:
            return web.Response(status=rule.status, body=rule.body, headers=rule.headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = f"{self.upstream}{request.path_qs}"
        async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP - {"content-length"}})
            await response.prepare(request)
            sent = 0
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                if rule is not None and rule.cut_after is not None and sent + len(chunk) > rule.cut_after:
                    await response.write(chunk[: rule.cut_after - sent])
                    if request.transport is not None:
                        request.transport.close()
                    return response
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response

    async def _wait(self, gate: threading.Event, seconds: float) -> None:
        with self._lock:
            self.holding += 1
        try:
            await asyncio.to_thread(gate.wait, seconds)
        finally:
            with self._lock:
                self.holding -= 1


@contextlib.contextmanager
def running_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of ``upstream`` for the block's duration."""
    proxy = FaultProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
