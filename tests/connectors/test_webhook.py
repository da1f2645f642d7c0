"""WebhookClient against a TLS receiver on 127.0.0.1 (CA and certificate generated for the session)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.pki import Pki, make_pki
from tests.fixtures.webhook import WEBHOOK_SECRET
from walkme_dic.api.connection import WebhookProvider
from walkme_dic.connectors.webhook import WebhookClient, sign
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError


def client(receiver: WebhookReceiver, pki: Pki | None, *, secret: str = WEBHOOK_SECRET,
           attempts: int = 4) -> WebhookClient:
    spec = WebhookProvider.model_validate({"url": receiver.hook, "auth": {"secretRef": {"name": "hook"}},
                                           "timeoutSeconds": 5})
    credentials = {"signingSecret": secret, **({"ca.crt": pki.ca_pem} if pki else {})}
    return WebhookClient(spec, credentials, max_attempts=attempts, retry_base_delay=0.01)


def people(count: int) -> list[dict[str, Any]]:
    return [{"id": f"u{i}", "email": f"u{i}@acme.example"} for i in range(1, count + 1)]


def test_probe_is_one_signed_post_verified_against_the_secret_ca(webhook_receiver: WebhookReceiver,
                                                                 webhook_pki: Pki) -> None:
    assert "accepted a signed probe" in client(webhook_receiver, webhook_pki).probe().message
    assert webhook_receiver.probes == 1 and webhook_receiver.batches == {}


def test_a_receiver_certificate_from_an_unknown_ca_is_refused(webhook_receiver: WebhookReceiver,
                                                              tmp_path: Path) -> None:
    for pki in (None, make_pki(tmp_path)):  # the system CAs, and a CA that did not sign the receiver's certificate
        with pytest.raises(PermanentError, match=r"certificate is not trusted .* 'ca\.crt'") as error:
            client(webhook_receiver, pki).probe()
        assert error.value.reason == "TLSError"
    assert webhook_receiver.requests == []


def test_a_wrong_signing_secret_is_an_authentication_error_with_the_answer(webhook_receiver: WebhookReceiver,
                                                                           webhook_pki: Pki) -> None:
    with pytest.raises(AuthenticationError, match=r"HTTP 401: .*signature does not match") as error:
        client(webhook_receiver, webhook_pki, secret="not-the-secret").probe()
    assert "not-the-secret" not in error.value.message


def test_records_arrive_in_signed_batches_with_run_and_sequence_keys(webhook_receiver: WebhookReceiver,
                                                                     webhook_pki: Pki) -> None:
    delivery = client(webhook_receiver, webhook_pki).send("run-a", "users", iter(people(5)), batch_size=2)
    assert (delivery.records, delivery.batches, delivery.attempts) == (5, 3, 3)
    assert list(webhook_receiver.batches) == ["run-a-1", "run-a-2", "run-a-3"]
    assert [b["sequence"] for b in webhook_receiver.batches.values()] == [1, 2, 3]
    assert {b["run"] for b in webhook_receiver.batches.values()} == {"run-a"}
    assert webhook_receiver.records() == people(5)


def test_nothing_to_send_posts_nothing(webhook_receiver: WebhookReceiver, webhook_pki: Pki) -> None:
    assert client(webhook_receiver, webhook_pki).send("run-b", "users", iter([]), batch_size=10).batches == 0
    assert webhook_receiver.requests == []


def test_429_waits_at_least_retry_after_and_repeats_the_same_key(webhook_receiver: WebhookReceiver,
                                                                webhook_pki: Pki) -> None:
    webhook_receiver.fail_next(1, 429, "slow down", {"Retry-After": "1"})
    started = time.monotonic()
    delivery = client(webhook_receiver, webhook_pki).send("run-c", "events", iter(people(3)), batch_size=10)
    assert time.monotonic() - started >= 0.95, "Retry-After: 1 was honoured"
    assert delivery.attempts == 2
    assert [r["Idempotency-Key"] for r in webhook_receiver.requests] == ["run-c-1", "run-c-1"]
    assert webhook_receiver.records() == people(3)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retried(webhook_receiver: WebhookReceiver, webhook_pki: Pki, status: int) -> None:
    webhook_receiver.fail_next(2, status)
    delivery = client(webhook_receiver, webhook_pki).send("run-d", "users", iter(people(2)), batch_size=1)
    assert delivery.attempts == 4 and webhook_receiver.records() == people(2)


def test_a_lost_answer_is_retried_and_the_receiver_drops_the_repeat(webhook_receiver: WebhookReceiver,
                                                                   webhook_pki: Pki) -> None:
    webhook_receiver.hang_up_next(1)
    client(webhook_receiver, webhook_pki).send("run-e", "users", iter(people(4)), batch_size=2)
    assert webhook_receiver.duplicates == 1 and webhook_receiver.records() == people(4), "each record once"


def test_a_refused_batch_fails_with_the_answer_redacted_and_stops(webhook_receiver: WebhookReceiver,
                                                                  webhook_pki: Pki) -> None:
    client(webhook_receiver, webhook_pki).send("run-f", "users", iter(people(2)), batch_size=2)
    webhook_receiver.reset()
    webhook_receiver.fail_next(1, 422, f'{{"error": "field email missing", "echo": "{WEBHOOK_SECRET}"}}')
    with pytest.raises(PermanentError) as error:
        client(webhook_receiver, webhook_pki).send("run-f", "users", iter(people(6)), batch_size=2)
    message = error.value.message
    assert error.value.reason == "WebhookRejected"
    assert "refused batch 1 (records 1-2) with HTTP 422" in message and "field email missing" in message
    assert WEBHOOK_SECRET not in message and "***" in message
    assert len(webhook_receiver.requests) == 1, "no batch after the refused one"


def test_a_receiver_that_keeps_failing_ends_in_a_transient_error(webhook_receiver: WebhookReceiver,
                                                                 webhook_pki: Pki) -> None:
    webhook_receiver.fail_next(10, 503, "maintenance")
    with pytest.raises(TransientError, match=r"kept answering 503 to batch 1 .* after 3 attempts: maintenance"):
        client(webhook_receiver, webhook_pki, attempts=3).send("run-g", "users", iter(people(1)), batch_size=1)


@pytest.mark.parametrize("ca", ["not a pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_a_ca_that_is_not_pem_is_named(webhook_receiver: WebhookReceiver, ca: str) -> None:
    spec = WebhookProvider.model_validate({"url": webhook_receiver.hook, "auth": {"secretRef": {"name": "h"}}})
    with pytest.raises(PermanentError, match=r"'ca\.crt' is not a PEM CA certificate bundle"):
        WebhookClient(spec, {"signingSecret": WEBHOOK_SECRET, "ca.crt": ca})


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    assert sign("Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_plain_http_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="url"):
        WebhookProvider.model_validate({"url": "http://example.com/hook", "auth": {"secretRef": {"name": "h"}}})


def test_the_environment_proxy_applies_unless_no_proxy(webhook_receiver: WebhookReceiver, webhook_pki: Pki,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = client(webhook_receiver, webhook_pki).http
    assert isinstance(proxied, urllib3.ProxyManager) and proxied.proxy is not None
    assert proxied.proxy.host == "proxy.corp.example"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client(webhook_receiver, webhook_pki).probe().message
