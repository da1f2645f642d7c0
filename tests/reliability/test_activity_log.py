"""WalkMe's documented activity log as an outbound source, through the real engine, to a webhook (a SIEM's).

`GET /public/v1/activitylog` takes from/to (Unix milliseconds) and limit/offset; each run reads up to a
minute before it began and keeps that time as its watermark, so the next run (since: lastRun) reads on from
there: every event once (assumption A12: from includes its bound, to does not).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.pki import Pki
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET
from tests.fixtures.webhook import WEBHOOK_SECRET
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync


def event(number: int, at: datetime) -> dict[str, Any]:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"eventId": f"ev-{number}", "timestamp": stamp, "accountId": 123456,
            "userEmail": f"admin{number % 3}@acme.example", "actionType": "save_shoutout", "statusCode": 200,
            "additionalInfo": {"systemId": None}}


def audit_run(walkme: FakeWalkMe, receiver: WebhookReceiver, pki: Pki, since: str,
              watermark: str | None = None) -> SyncResult:
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "audit"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
        "spec": {"direction": "Outbound", "connectionRef": {"name": "siem"}, "walkmeConnectionRef": {"name": "walkme"},
                 "source": {"walkme": {"dataset": "activityLog", "since": since}},
                 "destination": {"webhook": {"batchSize": 500}},
                 "mapping": {"key": {"source": "eventId", "destination": "event_id"},
                             "fields": [{"source": "timestamp", "destination": "at"},
                                        {"source": "userEmail", "destination": "actor"},
                                        {"source": "actionType", "destination": "action"}]}},
        "connection": {"webhook": {"url": receiver.hook, "auth": {"secretRef": {"name": "hook"}}}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
        "state": {"watermark": watermark},
    })
    credentials = CredentialSet({"external": {"signingSecret": WEBHOOK_SECRET, "ca.crt": pki.ca_pem},
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}})
    return run_sync(request, credentials)


def test_the_activity_log_reaches_a_webhook_every_event_once_run_after_run(
    walkme: FakeWalkMe, webhook_receiver: WebhookReceiver, webhook_pki: Pki,
) -> None:
    now = datetime.now(UTC)
    start = now - timedelta(hours=3)
    walkme.seed_activity([event(n, start + timedelta(seconds=4 * n)) for n in range(2500)])  # up to ~3 h ago
    walkme.seed_activity([event(9999, now - timedelta(seconds=20))])  # too young: a later run reads it
    first = audit_run(walkme, webhook_receiver, webhook_pki, since=start.isoformat())
    assert (first.result, first.rows_read, first.rows_written) == ("Succeeded", 2500, 2500), first
    assert sum("/public/v1/activitylog" in line for line in walkme.request_lines) == 3, "pages of 1000 by offset"
    received = webhook_receiver.records()
    assert len({r["event_id"] for r in received}) == 2500 and "ev-9999" not in {r["event_id"] for r in received}
    assert received[0] == {"event_id": "ev-0", "at": event(0, start)["timestamp"], "actor": "admin0@acme.example",
                           "action": "save_shoutout"}
    assert first.watermark is not None
    watermark = datetime.fromisoformat(first.watermark.replace("Z", "+00:00"))
    assert timedelta(seconds=55) < now - watermark < timedelta(seconds=70), "a minute before the run began"

    walkme.seed_activity([event(5000, watermark)])  # stamped exactly at the watermark: the next run's
    time.sleep(0.05)
    webhook_receiver.reset()
    second = audit_run(walkme, webhook_receiver, webhook_pki, since="lastRun", watermark=first.watermark)
    assert (second.result, second.rows_read) == ("Succeeded", 1), second
    assert [r["event_id"] for r in webhook_receiver.records()] == ["ev-5000"], "nothing read twice, nothing lost"
    assert second.watermark is not None and second.watermark > first.watermark
