"""Records Salesforce refuses for a passing reason (UNABLE_TO_LOCK_ROW) are sent once more, on their own.

The fake org refuses writes of the records a test locks (``lock``), as when another transaction holds the row;
only what is still refused after the second try is reported, with its record number and reason.
"""

from __future__ import annotations

from tests.connectors.test_salesforce import client, contacts
from tests.connectors.test_salesforce_outbound_keys import export, users
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe


def test_a_locked_record_in_a_collection_is_sent_again_alone(salesforce: FakeSalesforce) -> None:
    salesforce.lock(["wm-2"])
    report = client(salesforce).write("Contact", "upsert", contacts(5), "WalkMe_Id__c")
    assert (report.written, report.failed) == (5, [])
    assert salesforce.calls["collections"] == 2 and len(salesforce.records("Contact")) == 5


def test_a_record_locked_twice_is_refused_with_its_reason_and_sent_only_twice(salesforce: FakeSalesforce) -> None:
    salesforce.lock(["wm-1"], times=3)
    report = client(salesforce).write("Contact", "insert", contacts(3), "WalkMe_Id__c")
    assert report.written == 2 and [i for i, _ in report.failed] == [1]
    assert report.failed[0][1] == ("UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record "
                                   "(refused again when sent a second time)")
    assert salesforce.calls["collections"] == 2 and salesforce.locked["wm-1"] == 1


def test_an_update_by_id_of_a_locked_record_is_sent_again(salesforce: FakeSalesforce) -> None:
    ids = salesforce.seed("Contact", [{"LastName": "Old", "WalkMe_Id__c": f"wm-{i}"} for i in range(3)])
    salesforce.lock([ids[0]])
    report = client(salesforce).write("Contact", "update", [{"Id": i, "LastName": "New"} for i in ids], None)
    assert (report.written, report.failed) == (3, [])
    assert {r["LastName"] for r in salesforce.records("Contact")} == {"New"}


def test_locked_records_of_a_bulk_job_go_into_a_second_job(salesforce: FakeSalesforce) -> None:
    salesforce.lock(["wm-3", "wm-17"])
    records = contacts(20)
    records[5]["Email"] = "broken"
    report = client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    assert report.written == 19 and [i for i, _ in report.failed] == [5], "a bad value is not sent twice"
    _, second = salesforce.ingest_jobs.values()
    assert (second.data or b"").count(b"\n") == 3, "the header and the two locked records"
    assert salesforce.calls["bulk.create"] == 2


def test_a_bulk_record_locked_on_both_tries_is_reported_with_its_index(salesforce: FakeSalesforce) -> None:
    salesforce.lock(["wm-12"], times=2)
    report = client(salesforce).write("Contact", "insert", contacts(20), "WalkMe_Id__c", bulk_threshold=10)
    assert report.written == 19 and [i for i, _ in report.failed] == [12]
    assert report.failed[0][1].startswith("UNABLE_TO_LOCK_ROW: unable to obtain exclusive access")
    assert report.failed[0][1].endswith("(refused again when sent a second time)")
    assert salesforce.calls["bulk.create"] == 2, "bounded: one second job, no third"


def test_an_outbound_run_with_a_locked_row_writes_it_and_succeeds(salesforce: FakeSalesforce,
                                                                 walkme: FakeWalkMe) -> None:
    """Before: the locked row was a rejected row, the run Succeeded within its limits and the watermark moved
    past a record never written."""
    users(walkme, [f"u{i}" for i in range(30)])
    salesforce.lock(["u7"])
    result = export(salesforce, walkme, bulkThreshold=5)
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", 30, 0), result
    assert len(salesforce.records("Contact")) == 30


def test_an_outbound_run_names_the_line_of_a_row_still_locked(salesforce: FakeSalesforce,
                                                              walkme: FakeWalkMe) -> None:
    users(walkme, [f"u{i}" for i in range(30)])
    salesforce.lock(["u7"], times=2)
    result = export(salesforce, walkme, bulkThreshold=5)
    assert (result.rows_written, result.rows_rejected) == (29, 1), result
    assert result.rejected[0].row == 8 and "UNABLE_TO_LOCK_ROW" in result.rejected[0].reason
