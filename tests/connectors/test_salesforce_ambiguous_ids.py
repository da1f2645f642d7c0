"""An external id that several Salesforce records hold: the record is refused with why, never a crashed run.

Salesforce: "If the external ID is matched multiple times, then a 300 error is reported, and the record isn't
created or updated". The single-record upsert answers 300 with the matching records; sObject Collections
and Bulk API 2.0 refuse that one record (DUPLICATE_EXTERNAL_ID). The fake org does the same for records a
test seeds with a shared external id (a field marked External ID but not Unique).
"""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMoreThanOneRecord

from tests.connectors.test_salesforce import client, contacts
from tests.connectors.test_salesforce_contract import sf  # noqa: F401 (the fixture)
from tests.connectors.test_salesforce_outbound_keys import export, users
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from walkme_dic.errors import PermanentError


def twins(fake: FakeSalesforce, key: str) -> list[str]:
    return fake.seed("Contact", [{"WalkMe_Id__c": key, "LastName": "Twin A"}, {"WalkMe_Id__c": key.upper(),
                                                                               "LastName": "Twin B"}])


def test_the_single_record_upsert_answers_300_with_the_matches(sf: Salesforce,  # noqa: F811
                                                                salesforce: FakeSalesforce) -> None:
    ids = twins(salesforce, "wm-1")
    with pytest.raises(SalesforceMoreThanOneRecord) as error:
        sf.Contact.upsert("WalkMe_Id__c/wm-1", {"LastName": "Which one?"})
    assert error.value.status == 300
    assert sorted(url.rsplit("/", 1)[1] for url in error.value.content) == sorted(ids)
    assert {r["LastName"] for r in salesforce.records("Contact")} == {"Twin A", "Twin B"}


def test_the_clients_own_300_is_an_error_that_names_the_matches(salesforce: FakeSalesforce) -> None:
    ids = twins(salesforce, "wm-1")
    with pytest.raises(PermanentError, match="several records hold this external id") as error:
        client(salesforce).call("upsert", lambda sf: sf.Contact.upsert("WalkMe_Id__c/wm-1", {"LastName": "x"}))
    assert error.value.reason == "AmbiguousExternalId" and all(i in str(error.value) for i in ids)


@pytest.mark.parametrize("bulk_threshold", [2000, 10], ids=["collections", "bulk"])
def test_a_record_whose_external_id_several_records_hold_is_refused_alone(salesforce: FakeSalesforce,
                                                                          bulk_threshold: int) -> None:
    twins(salesforce, "wm-4")
    report = client(salesforce).write("Contact", "upsert", contacts(12), "WalkMe_Id__c",
                                      bulk_threshold=bulk_threshold)
    assert report.written == 11 and [i for i, _ in report.failed] == [4]
    reason = report.failed[0][1]
    assert reason.startswith("DUPLICATE_EXTERNAL_ID: Contact WalkMe_Id__c: more than one record found")
    assert reason.endswith("merge them or make the field Unique")
    assert sorted(r["LastName"] for r in salesforce.records("Contact") if r["WalkMe_Id__c"].lower() == "wm-4") == \
        ["Twin A", "Twin B"], "neither twin was changed"


def test_an_outbound_run_rejects_the_ambiguous_row_and_writes_the_rest(salesforce: FakeSalesforce,
                                                                       walkme: FakeWalkMe) -> None:
    twins(salesforce, "u2")
    users(walkme, [f"u{i}" for i in range(5)])
    result = export(salesforce, walkme, limit=1)
    assert (result.result, result.reason, result.rows_written, result.rows_rejected) == \
        ("Succeeded", "RowsRejected", 4, 1), result
    strict = export(salesforce, walkme)  # no limit: the row would be lost behind the watermark, so the run fails
    assert (strict.result, strict.reason, strict.watermark) == ("Failed", "TooManyRejectedRows", None), strict
    assert result.rejected[0].row == 3 and "several records hold this external id" in result.rejected[0].reason
