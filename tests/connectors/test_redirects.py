"""No client follows a redirect: a 3xx answer is a failed call that names where it pointed. A followed 307
resends the request body (a token request's client secret, a batch of users) to wherever the Location says,
plain http or a host the admin never allowed, and the egress rules see only the address, not the scheme."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.test_unreachable import specs
from tests.fixtures.listeners import Listener
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.controllers.connection import failed_probe, guarded_probe
from walkme_dic_dev.egress import LOOPBACK


@pytest.fixture
def redirecting(recording_listener: Listener) -> Iterator[Listener]:
    """Answers every request with a 307 to the recording listener, which must hear nothing."""
    listener = Listener(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {recording_listener.url}/elsewhere\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    yield listener
    listener.close()


@pytest.mark.parametrize("provider", [p for p in specs("127.0.0.1", 1) if p != "sftp"])
def test_a_redirect_is_never_followed(provider: str, redirecting: Listener, recording_listener: Listener) -> None:
    spec_fields, credentials = specs("127.0.0.1", redirecting.port)[provider]
    spec = ConnectionSpec.model_validate(spec_fields)
    with pytest.raises(Exception) as raised:
        guarded_probe(spec, credentials, LOOPBACK, 5)
    assert (recording_listener.connections, bytes(recording_listener.received)) == (0, b"")
    outcome = failed_probe(spec, raised.value, credentials)
    assert not outcome.ready
    assert "answered HTTP 307, a redirect to" in outcome.message, outcome.message
