"""Clearing Salesforce fields from WalkMe: the empty-value policy (spec.mapping.emptyValues) outbound.

``keep`` sends nothing for an empty value, so Salesforce keeps the field; ``clear`` sets it to null:
JSON null in sObject Collections, ``#N/A`` in a Bulk API 2.0 CSV (where an empty cell leaves the
field as it is). Through the real engine, the fake WalkMe export and the fake org, which honours both.
"""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce

from tests.connectors.test_salesforce import client
from tests.connectors.test_salesforce_contract import WAIT, sf  # noqa: F401 (the fixture)
from tests.connectors.test_salesforce_outbound_keys import export
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe

COUNT = 12


def org_and_export(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    """Contacts u0…u11 with an Email and a FirstName; in WalkMe, u3's email and plan became empty."""
    salesforce.seed("Contact", [{"WalkMe_Id__c": f"u{i}", "LastName": f"n{i}", "Email": f"old{i}@acme.example",
                                 "FirstName": "Gold"} for i in range(COUNT)])
    walkme.seed("users", [{"userId": f"u{i}", "updatedAt": f"2026-11-20T08:00:{i:02d}Z",
                           **({} if i == 3 else {"email": f"new{i}@acme.example", "plan": "Silver"})}
                          for i in range(COUNT)])


def mapping(policy: str, plan_policy: str | None = None) -> dict[str, Any]:
    plan: dict[str, Any] = {"source": "plan", "destination": "FirstName"}
    if plan_policy:
        plan["emptyValues"] = plan_policy
    return {"key": {"source": "userId", "destination": "WalkMe_Id__c"}, "emptyValues": policy,
            "fields": [{"source": "email", "destination": "Email"}, plan]}


def contact(salesforce: FakeSalesforce, key: str) -> dict[str, Any]:
    return next(r for r in salesforce.records("Contact") if r["WalkMe_Id__c"] == key)


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
def test_clear_empties_the_salesforce_field(salesforce: FakeSalesforce, walkme: FakeWalkMe, bulk: bool) -> None:
    org_and_export(salesforce, walkme)
    result = export(salesforce, walkme, mapping=mapping("clear"), bulkThreshold=5 if bulk else 2000)
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", COUNT, 0), result
    cleared = contact(salesforce, "u3")
    assert (cleared["Email"], cleared["FirstName"], cleared["LastName"]) == (None, None, "n3")
    assert contact(salesforce, "u4")["Email"] == "new4@acme.example"
    if bulk:
        [job] = salesforce.ingest_jobs.values()
        assert b"\nu3,#N/A,#N/A\n" in (job.data or b"")


@pytest.mark.parametrize("bulk", [False, True], ids=["collections", "bulk"])
def test_keep_leaves_the_salesforce_field_as_it_is(salesforce: FakeSalesforce, walkme: FakeWalkMe,
                                                  bulk: bool) -> None:
    org_and_export(salesforce, walkme)
    result = export(salesforce, walkme, mapping=mapping("keep"), bulkThreshold=5 if bulk else 2000)
    assert (result.rows_written, result.rows_rejected) == (COUNT, 0), result
    kept = contact(salesforce, "u3")
    assert (kept["Email"], kept["FirstName"]) == ("old3@acme.example", "Gold")


def test_a_field_says_otherwise_than_the_mapping(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    org_and_export(salesforce, walkme)
    export(salesforce, walkme, mapping=mapping("clear", plan_policy="keep"), bulkThreshold=5)
    record = contact(salesforce, "u3")
    assert (record["Email"], record["FirstName"]) == (None, "Gold")


def test_a_field_empty_in_the_first_records_is_still_sent_later(salesforce: FakeSalesforce,
                                                                walkme: FakeWalkMe) -> None:
    """The Bulk job's columns come from the mapping, not only from the first records: with keep, a field every
    early record left out is written for the later ones that have it."""
    salesforce.seed("Contact", [{"WalkMe_Id__c": f"u{i}", "LastName": f"n{i}"} for i in range(COUNT)])
    walkme.seed("users", [{"userId": f"u{i}", "updatedAt": f"2026-11-20T08:00:{i:02d}Z",
                           **({"email": f"u{i}@acme.example"} if i >= 8 else {})} for i in range(COUNT)])
    result = export(salesforce, walkme, mapping=mapping("keep"), bulkThreshold=5)
    assert (result.rows_written, result.rows_rejected) == (COUNT, 0), result
    assert contact(salesforce, "u9")["Email"] == "u9@acme.example"


def test_the_text_na_cannot_go_through_bulk(salesforce: FakeSalesforce) -> None:
    """``#N/A`` would clear the field, not write the text: such a record is refused, with why."""
    records = [{"WalkMe_Id__c": f"wm-{i}", "LastName": "#N/A" if i == 2 else f"n{i}"} for i in range(12)]
    report = client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    assert report.written == 11
    assert report.failed == [(2, "LastName: the text #N/A means 'clear this field' in a Bulk API 2.0 file, so it "
                                 "cannot be written as a value")]


def test_the_fake_clears_on_na_and_json_null_and_keeps_on_an_empty_cell(sf: Salesforce,  # noqa: F811
                                                                        salesforce: FakeSalesforce) -> None:
    ids = salesforce.seed("Contact", [{"LastName": f"n{i}", "Email": f"e{i}@acme.example", "FirstName": "F"}
                                      for i in range(3)])
    [job] = sf.bulk2.Contact.update(records=[{"Id": ids[0], "Email": "#N/A", "FirstName": ""}], wait=WAIT)
    assert job["numberRecordsFailed"] == 0
    sf.Contact.update(ids[1], {"Email": None})
    by_id = {r["Id"]: r for r in salesforce.records("Contact")}
    assert (by_id[ids[0]]["Email"], by_id[ids[0]]["FirstName"]) == (None, "F")
    assert by_id[ids[1]]["Email"] is None and by_id[ids[2]]["Email"] == "e2@acme.example"
