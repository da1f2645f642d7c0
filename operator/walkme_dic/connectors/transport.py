"""HTTP requests for the WalkMe client: the standard library's http.client, one kept-alive connection a thread.

An inbound run sends ~10,000 requests per million users, eight threads at a time, and each thread
needs the interpreter lock for the CPU a request costs. urllib3's pool spends ~180 µs of CPU per
upsert request where http.client spends ~75 µs (a loopback measurement, see the issue 11 note);
with eight senders that CPU is what the requests queue for: a million users were sent ~11 % faster
and with half the CPU. Through a proxy (HTTPS_PROXY / HTTP_PROXY, NO_PROXY respected), requests go
through urllib3's ProxyManager instead, which speaks CONNECT and proxy authentication; this module
does not.

Both transports answer a :class:`Response` and raise :class:`Unreachable` when no HTTP answer came
(connection refused, reset, timed out, TLS failure); the caller decides about retrying.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import urllib3

from walkme_dic.connectors.common import environment_proxy

STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)  # a kept-alive connection closed


class Unreachable(Exception):
    """No HTTP answer: the message names the kind of failure (never a header or a body); ``stale`` when a
    kept-alive connection turned out closed."""

    def __init__(self, kind: str, *, stale: bool = False) -> None:
        super().__init__(kind)
        self.stale = stale


@dataclass(frozen=True)
class Response:
    status: int
    data: bytes
    headers: Mapping[str, str]


class Transport(Protocol):
    def request(self, method: str, url: str, *, body: bytes | None, headers: dict[str, str],
                timeout: float) -> Response: ...


def transport_for(base: str, size: int) -> Transport:
    """Kept-alive http.client connections to ``base``, or urllib3 through the proxy the environment names."""
    proxy = environment_proxy(base)
    return ProxiedTransport(urllib3.ProxyManager(proxy, maxsize=size)) if proxy else KeepAliveTransport(base)


class KeepAliveTransport:
    """One connection per thread to one origin (scheme, host, port), opened on first use and kept."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base}")
        self.https, self.host, self.port = parts.scheme == "https", parts.hostname, parts.port
        self.context = context if context is not None or not self.https else ssl.create_default_context()
        self.local = threading.local()

    def request(self, method: str, url: str, *, body: bytes | None, headers: dict[str, str],
                timeout: float) -> Response:
        target = urlsplit(url)
        path = target.path + (f"?{target.query}" if target.query else "")
        connection, reused = self._connection(timeout)
        try:
            return _exchange(connection, method, path, body, headers)
        except Unreachable as error:
            if not (reused and error.stale):
                raise
        # the server closed the kept-alive connection meanwhile: once more on a new one (WalkMe's calls are
        # idempotent upserts and reads, so a request the server did take is harmless to repeat)
        return _exchange(self._connection(timeout, fresh=True)[0], method, path, body, headers)

    def _connection(self, timeout: float, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it was used before: a new one when there is none, it was
        closed, or ``fresh``."""
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is not None and connection.sock is not None and not fresh:
            connection.timeout = timeout
            connection.sock.settimeout(timeout)
            return connection, True
        if connection is not None:
            connection.close()
        if self.https:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.context)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.local.connection = connection
        return connection, False


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Response:
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise Unreachable(type(error).__name__, stale=isinstance(error, STALE)) from None
    if answer.will_close:
        connection.close()
    return Response(answer.status, data, answer.headers)


class ProxiedTransport:
    """urllib3's ProxyManager (CONNECT for https, absolute URLs for http, proxy credentials from the URL)."""

    def __init__(self, pool: urllib3.PoolManager) -> None:
        self.pool = pool

    def request(self, method: str, url: str, *, body: bytes | None, headers: dict[str, str],
                timeout: float) -> Response:
        try:
            answer = self.pool.request(method, url, body=body, headers=headers, retries=False, timeout=timeout)
        except urllib3.exceptions.HTTPError as error:
            raise Unreachable(type(error).__name__) from None
        return Response(answer.status, answer.data, answer.headers)
