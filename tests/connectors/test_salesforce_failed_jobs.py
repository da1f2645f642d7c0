"""A Bulk API 2.0 job that ends Failed part way: what it processed stays applied and is counted.

The fake org processes some internal batches of the job, then fails it with the rest unprocessed, as
Salesforce does when a batch still fails after its retries; the client reads the failed and unprocessed
results back, and the run says PartiallyApplied with the numbers.
"""

from __future__ import annotations

import pytest

from tests.connectors.test_salesforce import client, contacts
from tests.connectors.test_salesforce_outbound_keys import export, users
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from walkme_dic.errors import PartlyApplied

FAILURE = "InternalServerError : a batch could not be processed after 10 retries"


def test_a_job_failed_after_one_batch_reports_what_it_applied(salesforce: FakeSalesforce) -> None:
    """30 records in batches of 10, processed last batch first: the first job applies 20 to 29 and fails, its 20
    unprocessed records go into a second job, which applies 10 to 19 and fails too: 0 to 9 are left, not sent a third
    time."""
    salesforce.bulk_batch_size = 10
    salesforce.fail_next_bulk_job(FAILURE, after_batches=1)
    salesforce.fail_next_bulk_job(FAILURE, after_batches=1)
    records = contacts(30)
    records[25]["Email"] = "broken"
    with pytest.raises(PartlyApplied) as stopped:
        client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    report = stopped.value
    assert stopped.value.reason == "PartiallyApplied"
    assert report.report.written == 19 and report.unprocessed == 10
    assert [i for i, _ in report.report.failed] == [*range(10), 25], "the last batch was processed first"
    assert report.report.failed[0][1].startswith("not processed: the Bulk job 750")
    assert report.report.failed[0][1].endswith("when its records were sent a second time")
    assert report.report.failed[-1][1].startswith("Email: invalid email address")
    assert len(salesforce.records("Contact")) == 19 and len(salesforce.ingest_jobs) == 2


def test_the_records_a_failed_job_left_are_applied_by_a_new_job(salesforce: FakeSalesforce) -> None:
    salesforce.bulk_batch_size = 10
    salesforce.fail_next_bulk_job(FAILURE, after_batches=1)
    report = client(salesforce).write("Contact", "insert", contacts(30), "WalkMe_Id__c", bulk_threshold=10)
    assert (report.written, report.failed) == (30, [])
    first, second = salesforce.ingest_jobs.values()
    assert (first.state, second.state) == ("Failed", "JobComplete")
    assert (second.data or b"").count(b"\n") == 21, "only the 20 unprocessed records were sent again"
    assert sorted(r["WalkMe_Id__c"] for r in salesforce.records("Contact")) == sorted(f"wm-{i}" for i in range(30))


def test_a_job_failed_on_its_data_is_not_sent_again(salesforce: FakeSalesforce) -> None:
    """InvalidBatch (a field the object lacks) fails the same way every time: no second job."""
    records = [{"WalkMe_Id__c": f"wm-{i}", "LastName": "x", "Emial": "a@b.io"} for i in range(20)]
    with pytest.raises(PartlyApplied, match="Field name not found : Emial"):
        client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    assert len(salesforce.ingest_jobs) == 1


def test_a_job_failed_before_any_batch_says_nothing_was_applied(salesforce: FakeSalesforce) -> None:
    salesforce.fail_next_bulk_job(FAILURE)
    salesforce.fail_next_bulk_job(FAILURE)
    with pytest.raises(PartlyApplied) as stopped:
        client(salesforce).write("Contact", "upsert", contacts(30), "WalkMe_Id__c", bulk_threshold=10)
    assert stopped.value.reason == "BulkJobFailed" and stopped.value.report.written == 0
    assert stopped.value.unprocessed == 30


def test_an_outbound_run_whose_job_failed_part_way_is_partially_applied(salesforce: FakeSalesforce,
                                                                         walkme: FakeWalkMe) -> None:
    """The first job applies 20 and fails; the 10 it left go into a second job, which fails before any batch."""
    salesforce.bulk_batch_size = 10
    salesforce.fail_next_bulk_job(FAILURE, after_batches=2)
    salesforce.fail_next_bulk_job(FAILURE)
    users(walkme, [f"u{i}" for i in range(30)])
    result = export(salesforce, walkme, bulkThreshold=5)
    assert (result.result, result.reason, result.rows_read, result.rows_written, result.rows_rejected) == \
        ("Failed", "PartiallyApplied", 30, 20, 10), result
    assert "20 records were applied, 0 refused, 10 not processed by that job and 0 not sent" in result.message
    assert result.rejected[0].row == 1 and "not processed" in result.rejected[0].reason
    assert len(salesforce.records("Contact")) == 20
