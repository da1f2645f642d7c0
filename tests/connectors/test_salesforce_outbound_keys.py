"""Keys repeated in one outbound run to Salesforce: the last record wins, the others are counted, none refused.

Through the real engine (`run_sync`): the fake WalkMe API exports the users, the fake org refuses a key
repeated within one call or Bulk batch and applies copies in different batches last batch first.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.connectors.test_salesforce import client
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET
from walkme_dic.api.run import DuplicateRow, SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

CREDENTIALS = CredentialSet({"external": {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET},
                             "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}})


def export(fake: FakeSalesforce, walkme: FakeWalkMe, *, mapping: dict[str, Any] | None = None,
           limit: int | None = None, **destination: Any) -> SyncResult:
    """Users upserted into Contact by WalkMe_Id__c, email into LastName (``mapping`` replaces that); ``limit``
    is maxRejectedRows (unset, an incremental export fails on any rejected row)."""
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "to-crm"}, "runId": "run-1", "force": True,
        "spec": {"direction": "Outbound", "connectionRef": {"name": "crm"}, "walkmeConnectionRef": {"name": "wm"},
                 "source": {"walkme": {"dataset": "users"}}, "maxRejectedRows": limit,
                 "destination": {"salesforce": {"object": "Contact", "operation": "upsert",
                                                "externalIdField": "WalkMe_Id__c", **destination}},
                 "mapping": mapping or {"key": {"source": "userId", "destination": "WalkMe_Id__c"},
                                        "fields": [{"source": "email", "destination": "LastName"}]}},
        "connection": {"salesforce": {"instanceUrl": fake.url, "auth": {"secretRef": {"name": "sf"}}}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })
    return run_sync(request, CREDENTIALS)


def users(walkme: FakeWalkMe, keys: list[str]) -> None:
    """One user per key, in this order; a repeated key is the same user changed later."""
    walkme.seed("users", [{"userId": key, "email": f"{key}-v{keys[:i + 1].count(key)}@acme.example",
                           "updatedAt": f"2026-11-20T08:{i // 60:02d}:{i % 60:02d}Z"} for i, key in enumerate(keys)])


def last_names(fake: FakeSalesforce) -> dict[str, str]:
    return {r["WalkMe_Id__c"]: r["LastName"] for r in fake.records("Contact")}


def test_a_key_repeated_in_one_call_is_sent_once_with_its_last_values(salesforce: FakeSalesforce,
                                                                       walkme: FakeWalkMe) -> None:
    users(walkme, ["u1", "u2", "u1", "u3", "u1"])
    result = export(salesforce, walkme)
    assert (result.result, result.rows_read, result.rows_written, result.rows_rejected) == ("Succeeded", 5, 3, 0), \
        result
    assert result.duplicate_keys == 2
    assert result.duplicates == [DuplicateRow(row=1, replaced_by=3), DuplicateRow(row=3, replaced_by=5)]
    assert last_names(salesforce) == {"u1": "u1-v3@acme.example", "u2": "u2-v1@acme.example",
                                      "u3": "u3-v1@acme.example"}


def test_a_key_repeated_across_bulk_batches_keeps_the_last_values(salesforce: FakeSalesforce,
                                                                  walkme: FakeWalkMe) -> None:
    """Copies in different batches are each applied, in no set order (the fake: last batch first), so a stale
    copy would win if both were sent."""
    salesforce.bulk_batch_size = 10
    keys = [f"u{i}" for i in range(30)]
    users(walkme, [*keys, "u0"])
    result = export(salesforce, walkme, bulkThreshold=5)
    assert (result.result, result.rows_written, result.duplicate_keys) == ("Succeeded", 30, 1), result
    assert last_names(salesforce)["u0"] == "u0-v2@acme.example"
    assert result.rows_read == result.rows_written + result.rows_rejected + result.duplicate_keys


def test_every_record_is_sent_when_no_key_repeats(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    users(walkme, ["u1", "U2", "u3"])
    result = export(salesforce, walkme, operation="insert")
    assert (result.rows_written, result.duplicate_keys, result.duplicates) == (3, 0, [])


@pytest.mark.parametrize(("operation", "key"), [("upsert", "WalkMe_Id__c"), ("update", "Id")])
def test_the_org_refuses_a_repeated_key_only_within_one_bulk_batch(salesforce: FakeSalesforce, operation: str,
                                                                   key: str) -> None:
    """Straight through the client: the fake refuses both copies inside a batch and applies each copy in
    different batches, the later batch's first."""
    ids = salesforce.seed("Contact", [{"LastName": f"n{i}", "WalkMe_Id__c": f"wm-{i}"} for i in range(3)])
    salesforce.bulk_batch_size = 4
    value = {"WalkMe_Id__c": [f"wm-{i}" for i in range(3)], "Id": ids}[key]
    rows = [{key: value[0], "LastName": "same batch 1"}, {key: value[0], "LastName": "same batch 2"},
            {key: value[1], "LastName": "first batch"}, {key: value[2], "LastName": "x"},
            {key: value[1], "LastName": "second batch"}]
    report = client(salesforce).write("Contact", operation, rows, "WalkMe_Id__c" if key != "Id" else None,
                                      bulk_threshold=2)
    assert [i for i, _ in report.failed] == [0, 1]
    assert "Duplicate" in report.failed[0][1] and "specified" in report.failed[0][1]
    names = {r["WalkMe_Id__c"]: r["LastName"] for r in salesforce.records("Contact")}
    assert names == {"wm-0": "n0", "wm-1": "first batch", "wm-2": "x"}, "the stale copy won: no order is promised"
