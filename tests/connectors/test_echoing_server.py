"""A server that echoes the request it got into its error answer (issue 20, item 7): whatever the provider's
client sent (a form body with the client secret URL-encoded, HTTP Basic of id:secret, a JSON body), the
Connection's status message — built by failed_probe from what the client raised — holds no form of any
secret value. Real clients against a loopback listener."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus

import pytest

from tests.connectors.test_unreachable import specs
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.controllers.connection import failed_probe, guarded_probe
from walkme_dic_dev.egress import LOOPBACK

SECRET = 'Echo+me/if "you" can=ü'


@pytest.fixture(params=["json", "text"])
def echoing(request: pytest.FixtureRequest) -> Iterator[int]:
    as_json = request.param == "json"

    class Echo(BaseHTTPRequestHandler):
        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
            heard = f"{self.command} {self.path}\n{self.headers}\n{body}"
            fields = {"error": "invalid_request", "error_description": heard, "message": heard}
            text = json.dumps(fields) if as_json else heard
            data = text.encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json" if as_json else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = answer

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def forms(value: str, other: str) -> set[str]:
    """How a value travels, written out here independently of walkme_dic.redaction."""
    basic = base64.b64encode(f"{other}:{value}".encode()).decode()
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1], basic, basic.rstrip("="),
            json.dumps(value, ensure_ascii=False)[1:-1], base64.b64encode(value.encode()).decode().rstrip("=")}


@pytest.mark.parametrize("provider", ["s3", "azure", "salesforce", "walkme"])
def test_an_echoed_request_leaves_no_form_of_a_secret_in_status(provider: str, echoing: int,
                                                                request: pytest.FixtureRequest) -> None:
    echoing_json = request.node.callspec.params["echoing"] == "json"
    spec_fields, credentials = specs("127.0.0.1", echoing)[provider]
    credentials = {key: (SECRET if "s3cret" in value else value) for key, value in credentials.items()}
    spec = ConnectionSpec.model_validate(spec_fields)
    with pytest.raises(Exception) as raised:
        guarded_probe(spec, credentials, LOOPBACK, 5)
    message = failed_probe(spec, raised.value, credentials).message
    values = [v for v in credentials.values() if len(v) >= 4]
    leaked = {form for value in values for other in credentials.values() for form in forms(value, other)
              if form in message}
    assert not leaked, message
    if provider == "salesforce" and echoing_json:  # its client quotes the answer: the echo did reach status
        assert "POST /services/oauth2/token" in message
