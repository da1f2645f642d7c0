"""The WalkMe client's HTTP transport against real servers: kept-alive connections the server closes, TLS
checked against the CA it is given, and a real forward proxy (proxy.py) when the environment names one."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.pki import Pki
from tests.fixtures.servers import free_port, server_process
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET
from walkme_dic.api.connection import WalkMeProvider
from walkme_dic.connectors.transport import KeepAliveTransport, ProxiedTransport, Unreachable, transport_for
from walkme_dic.connectors.walkme import WalkMeClient
from walkme_dic.errors import TransientError


class Echo(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; the server keeps every connection's socket so that a test can close them."""

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.sockets.append(self.connection)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Echo)
        self.sockets: list[socket.socket] = []


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def post(transport: KeepAliveTransport, url: str, body: bytes) -> bytes:
    response = transport.request("POST", url, body=body, headers={"Content-Type": "text/plain"}, timeout=5)
    assert response.status == 200
    return response.data


def test_a_kept_alive_connection_is_reused_and_one_the_server_closed_is_replaced(echo: EchoServer) -> None:
    url = f"http://127.0.0.1:{echo.server_address[1]}/echo"
    transport = KeepAliveTransport(url)
    assert [post(transport, url, b"one"), post(transport, url, b"two")] == [b"one", b"two"]
    assert len({id(s) for s in echo.sockets}) == 1, "both requests on one connection"
    echo.sockets[0].shutdown(socket.SHUT_RDWR)  # the server drops the idle connection, as keep-alive timeouts do
    assert post(transport, url, b"three") == b"three"
    assert len({id(s) for s in echo.sockets}) == 2


def test_a_new_connection_that_fails_is_unreachable_without_another_try() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(Unreachable, match="ConnectionRefusedError") as raised:
        KeepAliveTransport(url).request("POST", url, body=b"", headers={}, timeout=2)
    assert not raised.value.stale


def test_tls_is_checked_against_the_given_authority(pki: Pki) -> None:
    """Trusting the server's CA it answers; with the default trust store (not that CA) it is unreachable."""
    walkme = FakeWalkMe(clients={WALKME_CLIENT: WALKME_SECRET}, integration_tokens={"t": "uuid"})
    walkme.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    walkme.ssl_context.load_cert_chain(pki.server.cert, pki.server.key)
    url = walkme.start()
    try:
        assert url.startswith("https://")
        trusted = KeepAliveTransport(url, ssl.create_default_context(cafile=str(pki.ca)))
        answer = trusted.request("POST", f"{url}/accounts/connect/token", body=b"grant_type=client_credentials",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5)
        assert answer.status == 401, "an HTTP answer over verified TLS (no credentials sent)"
        with pytest.raises(Unreachable, match="SSLCertVerificationError"):
            KeepAliveTransport(url).request("GET", f"{url}/x", body=None, headers={}, timeout=5)
    finally:
        walkme.stop()


@pytest.fixture
def forward_proxy() -> Iterator[str]:
    """proxy.py, a real HTTP forward proxy (absolute-form requests and CONNECT), on loopback."""
    port = free_port()
    with server_process([sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(port),
                         "--num-workers", "1", "--num-acceptors", "1"], port, "proxy.py") as url:
        yield url


def test_walkme_is_reached_through_the_proxy_the_environment_names(walkme: FakeWalkMe, forward_proxy: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", forward_proxy)
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    spec = WalkMeProvider.model_validate({"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                          "auth": {"secretRef": {"name": "w"}}})
    client = WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}, max_attempts=1)
    assert isinstance(client.transport, ProxiedTransport)
    assert "issued a token" in client.probe().message
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    unproxied = WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}, max_attempts=1)
    with pytest.raises(TransientError, match="cannot reach WalkMe"):
        unproxied.probe()  # the fake is up: only the proxy is missing, so the request did go to the proxy
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert isinstance(transport_for(walkme.url, 4), KeepAliveTransport)
