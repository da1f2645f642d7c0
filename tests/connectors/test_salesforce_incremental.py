"""Incremental inbound from Salesforce (``since``), through the real engine (`run_sync`).

The fake org filters on SystemModstamp as Salesforce does, dates its answers by its own clock
(``advance`` moves it) and can hold a transaction open (``begin``); the fake WalkMe API receives the
users. A run carries the previous watermark in ``state`` exactly as the operator passes status.watermark.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.integration import SalesforceSource
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

CREDENTIALS = CredentialSet({"external": {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET},
                             "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                             "integration-token": {"token": WALKME_TOKEN}})
STAMPS = {"c1": "2026-11-20T08:00:00.000+0000", "c2": "2026-11-21T08:00:00.000+0000",
          "c3": "2026-11-22T08:00:00.000+0000"}


def run(fake: FakeSalesforce, walkme: FakeWalkMe, source: dict[str, Any], *, watermark: str | None = None,
        dry_run: bool = False) -> SyncResult:
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "contacts"}, "runId": "run-1", "force": True,
        "spec": {"direction": "Inbound", "connectionRef": {"name": "crm"}, "walkmeConnectionRef": {"name": "wm"},
                 "source": {"salesforce": source}, "dryRun": dry_run,
                 "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                            "userIdProperty": "uuid"}},
                 "mapping": {"key": {"source": "WalkMe_Id__c", "destination": "uuid"},
                             "fields": [{"source": "Email", "destination": "email"}]}},
        "connection": {"salesforce": {"instanceUrl": fake.url, "auth": {"secretRef": {"name": "sf"}}}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
        "state": {"watermark": watermark},
    })
    return run_sync(request, CREDENTIALS)


def contacts_source(**extra: Any) -> dict[str, Any]:
    return {"object": "Contact", "fields": ["WalkMe_Id__c", "Email"], "since": "lastRun", **extra}


@pytest.fixture
def org(salesforce: FakeSalesforce) -> FakeSalesforce:
    salesforce.seed("Contact", [{"LastName": k, "WalkMe_Id__c": k, "Email": f"{k}@acme.example",
                                 "SystemModstamp": stamp} for k, stamp in STAMPS.items()])
    return salesforce


def touch(fake: FakeSalesforce, key: str, email: str) -> None:
    """An edit in Salesforce: the record gets a new SystemModstamp (now)."""
    sobject = fake.store.get("Contact")
    assert sobject is not None
    record = sobject.find_by_external_id(key)
    assert record is not None
    with fake._lock:
        fake.store.update(sobject, record["Id"], {"Email": email})


def covered(fake: FakeSalesforce, lookback: int = 300) -> datetime:
    """Where a run starting now reads up to: the org's clock less the lookback."""
    return fake.store.now() - timedelta(seconds=lookback)


def moment(watermark: str | None) -> datetime:
    assert watermark is not None
    return datetime.fromisoformat(watermark.replace("Z", "+00:00"))


def test_daily_import_reads_only_what_changed_since_the_watermark(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    first = run(org, walkme, contacts_source())
    assert (first.result, first.rows_read, first.rows_written) == ("Succeeded", 3, 3), first
    assert abs(moment(first.watermark) - covered(org)) < timedelta(seconds=5), "the org's time less 5 minutes"
    touch(org, "c1", "new@acme.example")
    too_soon = run(org, walkme, contacts_source(), watermark=first.watermark)
    assert too_soon.rows_read == 0, "a change younger than the lookback waits for the next run"
    org.advance(301)
    second = run(org, walkme, contacts_source(), watermark=too_soon.watermark)
    assert second.result == "Succeeded" and second.rows_read == 1, "c1 changed; nothing is read twice"
    assert walkme.users(WALKME_TOKEN)["c1"] == {"email": "new@acme.example"}
    third = run(org, walkme, contacts_source(), watermark=second.watermark)
    assert third.rows_read == 0 and moment(third.watermark) >= moment(second.watermark)


def test_a_change_committed_after_a_read_with_an_earlier_stamp_is_read_next_time(
        org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    """A two-minute transaction changes c2 at T (stamped T); c3 is changed and committed at T+60; a run reads
    at T+90; the transaction commits at T+120. Starting the next run at the newest stamp read (T+60) would
    never read c2."""
    late = org.begin()
    late.update("Contact", "c2", {"Email": "late@acme.example"})
    org.advance(60)
    touch(org, "c3", "prompt@acme.example")
    org.advance(30)
    first = run(org, walkme, contacts_source(), watermark="2026-11-21T12:00:00.000Z")
    assert first.result == "Succeeded"
    org.advance(30)
    late.commit()
    org.advance(400)
    second = run(org, walkme, contacts_source(), watermark=first.watermark)
    users = walkme.users(WALKME_TOKEN)
    assert users.get("c2") == {"email": "late@acme.example"}, "the change committed after the first read was lost"
    assert users["c3"] == {"email": "prompt@acme.example"}
    assert first.rows_read + second.rows_read == 2, "each change is read once"
    assert run(org, walkme, contacts_source(), watermark=second.watermark).rows_read == 0


def test_the_lookback_is_configurable(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    first = run(org, walkme, contacts_source(incrementalLookbackSeconds=0))
    touch(org, "c1", "now@acme.example")
    org.advance(1)
    second = run(org, walkme, contacts_source(incrementalLookbackSeconds=0), watermark=first.watermark)
    assert second.rows_read == 1 and walkme.users(WALKME_TOKEN)["c1"] == {"email": "now@acme.example"}
    assert abs(moment(second.watermark) - covered(org, 0)) < timedelta(seconds=5)


def test_the_org_clock_decides_not_this_machine(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    """The org runs an hour ahead of the sync Pod: a change the org stamped 10 minutes ago is read."""
    org.advance(3600)
    touch(org, "c1", "ahead@acme.example")
    org.advance(600)
    result = run(org, walkme, contacts_source(), watermark="2026-11-23T00:00:00.000Z")
    assert result.rows_read == 1 and moment(result.watermark) > datetime.now(UTC) + timedelta(minutes=50)


def test_without_a_watermark_every_record_is_read_again(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    """What the full-resync annotation gives a run: state without a watermark."""
    assert run(org, walkme, contacts_source(), watermark=None).rows_read == 3


def test_a_fixed_since_time_and_a_where_clause_both_apply(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    result = run(org, walkme, contacts_source(since="2026-11-21T00:00:00+01:00", where="Email LIKE 'c3%'"))
    assert result.rows_read == 1 and set(walkme.users(WALKME_TOKEN)) == {"c3"}


def test_dry_run_and_failed_run_leave_the_watermark_alone(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    assert run(org, walkme, contacts_source(), dry_run=True).watermark is None
    org.fail_next(1, 403, kind="query", error_code="INSUFFICIENT_ACCESS", message="no access to Contact")
    failed = run(org, walkme, contacts_source(), watermark="2026-11-21T08:00:00.000Z")
    assert failed.result == "Failed" and failed.watermark is None


def test_an_empty_increment_still_moves_the_watermark(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    result = run(org, walkme, contacts_source(), watermark="2026-11-23T00:00:00.000Z")
    assert (result.result, result.rows_read) == ("Succeeded", 0)
    assert abs(moment(result.watermark) - covered(org)) < timedelta(seconds=5)


def test_a_watermark_ahead_of_the_org_clock_stays(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    result = run(org, walkme, contacts_source(), watermark="2030-01-01T00:00:00.000Z")
    assert (result.result, result.rows_read, result.watermark) == ("Succeeded", 0, "2030-01-01T00:00:00.000Z")


def test_selected_modstamp_stays_in_the_rows(org: FakeSalesforce, walkme: FakeWalkMe) -> None:
    source = contacts_source(fields=["WalkMe_Id__c", "Email", "SystemModstamp"])
    result = run(org, walkme, source)
    assert result.rows_read == 3 and moment(result.watermark) > datetime(2026, 11, 22, 8, tzinfo=UTC)


@pytest.mark.parametrize(("spec", "since", "until", "soql"), [
    ({"object": "Contact", "fields": ["Email"]}, None, None, "SELECT Email FROM Contact"),
    ({"object": "Contact", "fields": ["Email"], "since": "lastRun"}, None, None,
     "SELECT Email, SystemModstamp FROM Contact"),
    ({"object": "Contact", "fields": ["Email"], "since": "lastRun"}, None, "2026-11-22T08:00:00.000Z",
     "SELECT Email, SystemModstamp FROM Contact WHERE SystemModstamp < 2026-11-22T08:00:00Z"),
    ({"object": "Contact", "fields": ["Email", "systemmodstamp"], "since": "lastRun"}, "2026-11-22T08:00:00.123Z",
     None, "SELECT Email, systemmodstamp FROM Contact WHERE SystemModstamp >= 2026-11-22T08:00:00Z"),
    ({"object": "Contact", "fields": ["Email"], "where": "A = 1 OR B = 2", "since": "lastRun"},
     "2026-11-22T09:00:00+01:00", "2026-11-23T08:00:00.000Z",
     "SELECT Email, SystemModstamp FROM Contact WHERE (A = 1 OR B = 2) AND SystemModstamp >= 2026-11-22T08:00:00Z "
     "AND SystemModstamp < 2026-11-23T08:00:00Z"),
])
def test_soql_of_an_incremental_read(spec: dict[str, Any], since: str | None, until: str | None, soql: str) -> None:
    assert SalesforceSource.model_validate(spec).query(since, until) == soql


@pytest.mark.parametrize(("spec", "error"), [
    ({"soql": "SELECT Id FROM Contact", "since": "lastRun"}, "set object and fields to read incrementally"),
    ({"object": "Contact", "fields": ["Id"], "since": "yesterday"}, "neither lastRun nor an RFC 3339 time"),
])
def test_since_needs_an_object_and_a_time(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SalesforceSource.model_validate(spec)
