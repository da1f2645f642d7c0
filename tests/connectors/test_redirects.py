"""No client follows a redirect: a 3xx answer is a failed call that names where it pointed. A followed 307
resends the request body (a token request's client secret, a batch of users) to wherever the Location says,
plain http or a host the admin never allowed, and the egress rules see only the address, not the scheme."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.connectors.test_unreachable import specs
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.controllers.connection import failed_probe, guarded_probe
from walkme_dic_dev.egress import LOOPBACK


def serve(answer: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[ThreadingHTTPServer]:
    """Where the redirect points: it records every request that reaches it."""
    class Record(BaseHTTPRequestHandler):
        def answer(self) -> None:
            server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = answer

        def log_message(self, *_: object) -> None:
            pass

    for server in serve(Record):
        server.requests = []  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def redirecting(elsewhere: ThreadingHTTPServer) -> Iterator[int]:
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}"

    class Redirect(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = answer

        def log_message(self, *_: object) -> None:
            pass

    for server in serve(Redirect):
        yield server.server_address[1]


@pytest.mark.parametrize("provider", [p for p in specs("127.0.0.1", 1) if p != "sftp"])
def test_a_redirect_is_never_followed(provider: str, redirecting: int, elsewhere: ThreadingHTTPServer) -> None:
    spec_fields, credentials = specs("127.0.0.1", redirecting)[provider]
    spec = ConnectionSpec.model_validate(spec_fields)
    with pytest.raises(Exception) as raised:
        guarded_probe(spec, credentials, LOOPBACK, 5)
    assert elsewhere.requests == []  # type: ignore[attr-defined]
    outcome = failed_probe(spec, raised.value, credentials)
    assert not outcome.ready
    assert "answered HTTP 307, a redirect to" in outcome.message, outcome.message
