"""Webhook receiver: WalkMe records POSTed as signed JSON batches to an HTTPS URL (outbound only).

Why a Connection and not only an Integration block: the URL, the signing secret and the CA are
*how to reach* the receiver, like a bucket and its key; as a ``webhook`` Connection they get what every
Connection has (the Secret watched and re-probed on rotation, Ready before any run, RBAC-free Jobs with
the Secret mounted as the ``external`` role). The Integration's ``destination.webhook`` keeps what to send
(``batchSize``).

The wire contract (documented in the README for receiver authors):

* ``POST <url>`` with ``Content-Type: application/json`` and the body
  ``{"run": <runId>, "sequence": <n, from 1>, "dataset": <users|events|sessions|report>, "records": [...]}``.
* ``X-WalkMe-DIC-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with signingSecret>``
  (the GitHub ``X-Hub-Signature-256`` scheme, so existing verifiers work).
* ``Idempotency-Key: <runId>-<sequence>`` (the IETF httpapi draft's header name): a retried POST, or a
  retried pod of the same run, repeats the key, so a receiver can drop what it already has. A *new* run
  after a failed one re-sends from the same watermark under new keys: records carry the mapping's key
  field, and receivers should upsert by it.
* Probe: one signed POST with ``X-WalkMe-DIC-Probe: true`` and ``{"probe": true, "records": []}``; any
  2xx passes. It checks DNS, TLS (against ``ca.crt`` when the Secret has one, else the system CAs), the
  URL and, for a receiver that verifies signatures, the signing secret.

Retries: connection errors, 408, 429 and 5xx are retried with exponential backoff, at least the
receiver's ``Retry-After``; any other 4xx fails the run at once with the receiver's answer (its first
500 characters, secrets redacted). Redirects are not followed (a signed body must not be re-sent to a
place nobody configured). The environment's HTTPS_PROXY / NO_PROXY apply, as for the WalkMe API.

Not supported (yet): other signature schemes or a timestamp in the signature (replay protection beyond
the idempotency key), mutual TLS client certificates, OAuth-protected receivers, and gzip bodies.

For the engine (connectors/records.py) ``WebhookReceiver`` is the record destination.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

import urllib3

from walkme_dic import reasons
from walkme_dic.api.connection import WEBHOOK_CA_KEY, WEBHOOK_SIGNING_KEY, WebhookProvider
from walkme_dic.connectors.base import ProbeResult
from walkme_dic.connectors.common import http_pool, retry_delay
from walkme_dic.connectors.records import Record, WriteReport
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError
from walkme_dic.redaction import redact

SIGNATURE_HEADER = "X-WalkMe-DIC-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PROBE_HEADER = "X-WalkMe-DIC-Probe"
RETRIABLE = {408, 429, 500, 502, 503, 504}
ANSWER_LIMIT = 500


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """What a send delivered."""

    records: int = 0
    batches: int = 0
    bytes: int = 0
    attempts: int = 0


class WebhookClient:
    def __init__(self, spec: WebhookProvider, credentials: Mapping[str, str], *, max_attempts: int = 6,
                 retry_base_delay: float = 1.0, max_retry_delay: float = 120, timeout: float | None = None) -> None:
        self.url = spec.url
        self.timeout = min(spec.timeout_seconds, timeout or spec.timeout_seconds)
        self._secret = credentials.get(WEBHOOK_SIGNING_KEY, "")
        if not self._secret:
            raise PermanentError(f"the webhook Secret has no {WEBHOOK_SIGNING_KEY!r} key (the HMAC signing secret)",
                                 reason=reasons.SECRET_KEY_MISSING)
        self.max_attempts, self.retry_base_delay, self.max_retry_delay = max_attempts, retry_base_delay, \
            max_retry_delay
        ca = credentials.get(WEBHOOK_CA_KEY)
        try:
            context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
        except (ssl.SSLError, ValueError):
            raise PermanentError(f"the webhook Secret's {WEBHOOK_CA_KEY!r} is not a PEM CA certificate bundle",
                                 reason=reasons.INVALID_CREDENTIALS) from None
        self.http = http_pool(self.url, 1, ssl_context=context)

    def probe(self) -> ProbeResult:
        body = json.dumps({"probe": True, "records": []}).encode()
        self._post(body, {PROBE_HEADER: "true", IDEMPOTENCY_HEADER: f"probe-{time.time_ns()}"}, "the probe")
        return ProbeResult(f"{self.url} accepted a signed probe POST")

    def send(self, run_id: str, dataset: str, records: Iterable[dict[str, Any]], batch_size: int) -> Delivery:
        """POST ``records`` in batches, in order, one at a time; stops at the first refused batch."""
        delivery = Delivery()
        iterator = iter(records)
        while batch := list(islice(iterator, batch_size)):
            sequence = delivery.batches + 1
            body = json.dumps({"run": run_id, "sequence": sequence, "dataset": dataset, "records": batch},
                              separators=(",", ":"), default=str).encode()
            first = delivery.records + 1
            delivery.attempts += self._post(body, {IDEMPOTENCY_HEADER: f"{run_id}-{sequence}"},
                                            f"batch {sequence} (records {first}-{first + len(batch) - 1})")
            delivery.batches, delivery.records, delivery.bytes = sequence, delivery.records + len(batch), \
                delivery.bytes + len(body)
        return delivery

    def _post(self, body: bytes, extra: dict[str, str], what: str) -> int:
        """POST until a final answer; returns the number of attempts. Raises with the receiver's answer."""
        headers = {"Content-Type": "application/json", "User-Agent": "walkme-dic",
                   SIGNATURE_HEADER: sign(self._secret, body), **extra}
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.http.request("POST", self.url, body=body, headers=headers, retries=False,
                                             redirect=False, timeout=self.timeout)
            except urllib3.exceptions.SSLError as error:
                raise PermanentError(f"TLS to {self.url} failed while sending {what}: {self._tls(error)}",
                                     reason=reasons.TLS_ERROR) from None
            except urllib3.exceptions.HTTPError as error:
                if attempt == self.max_attempts:
                    raise TransientError(f"cannot reach {self.url} while sending {what}: {type(error).__name__} "
                                         f"after {attempt} attempts") from None
                time.sleep(retry_delay(attempt, self.retry_base_delay, None, cap=self.max_retry_delay))
                continue
            if 200 <= response.status < 300:
                return attempt
            if response.status in RETRIABLE:
                if attempt == self.max_attempts:
                    raise TransientError(f"{self.url} kept answering {response.status} to {what} after {attempt} "
                                         f"attempts: {self._answer(response)}")
                time.sleep(retry_delay(attempt, self.retry_base_delay, response.headers.get("Retry-After"),
                                       cap=self.max_retry_delay))
                continue
            kind = AuthenticationError if response.status in (401, 403) else PermanentError
            raise kind(f"{self.url} refused {what} with HTTP {response.status}: {self._answer(response)}",
                       reason=reasons.WEBHOOK_REJECTED if kind is PermanentError else None)
        raise TransientError(f"{self.url} did not answer {what}")

    def _answer(self, response: urllib3.BaseHTTPResponse) -> str:
        text = response.data[:ANSWER_LIMIT].decode(errors="replace").strip() or "(empty body)"
        return redact(text, [self._secret])

    @staticmethod
    def _tls(error: urllib3.exceptions.SSLError) -> str:
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return ("the receiver's certificate is not trusted (put the CA that signed it in the Secret's "
                    f"{WEBHOOK_CA_KEY!r} key) or does not name this host")
        return text[:200]


@dataclass(frozen=True)
class WebhookReceiver:
    """A webhook as a record destination: :meth:`WebhookClient.send` with the run id, the dataset and the batch
    size bound; the delivery's records, batches, bytes and POSTs (``api_calls``) go into the report."""

    client: WebhookClient
    run_id: str
    dataset: str
    batch_size: int

    def write(self, records: Iterable[Record], report: WriteReport) -> WriteReport:
        delivery = self.client.send(self.run_id, self.dataset, records, self.batch_size)
        return report.add(WriteReport(written=delivery.records, api_calls=delivery.attempts,
                                      batches=delivery.batches, bytes=delivery.bytes))
