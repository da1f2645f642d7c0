"""No duplicates by retry: calls that may not run twice, answered 502/504 after they ran, are checked first.

The fake org runs the call and then answers as a gateway that timed out behind it would
(``time_out_after_applying``); the client is the real one, driving the fake through simple-salesforce.
"""

from __future__ import annotations

import pytest

from tests.connectors.test_salesforce import client, contacts
from tests.fakes.salesforce import FakeSalesforce, IngestJob
from walkme_dic.connectors.salesforce import sent_twice_is_harmless

BASE = "https://org.example/services/data/v62.0"


def test_an_insert_answered_504_after_it_ran_is_looked_up_not_sent_again(salesforce: FakeSalesforce) -> None:
    salesforce.time_out_after_applying(1, kind="collections")
    report = client(salesforce).write("Contact", "insert", contacts(5), "WalkMe_Id__c")
    assert (report.written, report.failed) == (5, [])
    assert len(salesforce.records("Contact")) == 5, "the insert was sent twice"
    assert salesforce.calls["collections"] == 1 and salesforce.calls["query"] == 1


def test_an_insert_answered_502_before_half_of_it_ran_sends_only_the_rest(salesforce: FakeSalesforce) -> None:
    """Two collections (200 + 100): the first ran and was answered 502; it is not sent again, the second is."""
    salesforce.time_out_after_applying(1, kind="collections", status=502)
    report = client(salesforce).write("Contact", "insert", contacts(300), "WalkMe_Id__c")
    assert report.written == 300 and len(salesforce.records("Contact")) == 300


def test_an_insert_without_an_external_id_is_reported_not_sent_again(salesforce: FakeSalesforce) -> None:
    salesforce.time_out_after_applying(1, kind="collections")
    records = [{k: v for k, v in r.items() if k != "WalkMe_Id__c"} for r in contacts(3)]
    report = client(salesforce).write("Contact", "insert", records, None)
    assert report.written == 0 and [i for i, _ in report.failed] == [0, 1, 2]
    assert "may be in Contact already and a second insert would duplicate it" in report.failed[0][1]
    assert len(salesforce.records("Contact")) == 3 and salesforce.calls["collections"] == 1


def test_an_upsert_answered_504_is_simply_sent_again(salesforce: FakeSalesforce) -> None:
    salesforce.time_out_after_applying(1, kind="collections")
    report = client(salesforce).write("Contact", "upsert", contacts(5), "WalkMe_Id__c")
    assert report.written == 5 and len(salesforce.records("Contact")) == 5
    assert salesforce.calls["collections"] == 2


@pytest.mark.parametrize("step", ["bulk.create", "bulk.upload", "bulk.state"])
def test_a_bulk_insert_step_answered_504_after_it_ran_is_not_repeated(salesforce: FakeSalesforce, step: str) -> None:
    """Create: the Open job is found and used (no second, empty job); upload: a second PUT is refused as
    'multiple contents' and means the first landed; close: the job has left Open, so it is not closed again
    (simple-salesforce's one-call flow would get 400 and abort the running job)."""
    salesforce.time_out_after_applying(1, kind=step)
    report = client(salesforce).write("Contact", "insert", contacts(30), "WalkMe_Id__c", bulk_threshold=10)
    assert (report.written, report.failed) == (30, [])
    [job] = salesforce.ingest_jobs.values()
    assert job.state == "JobComplete" and len(salesforce.records("Contact")) == 30


@pytest.mark.parametrize(("method", "url", "harmless"), [
    ("GET", f"{BASE}/query?q=SELECT+Id+FROM+Contact", True),
    ("PATCH", f"{BASE}/composite/sobjects/Contact/WalkMe_Id__c", True),
    ("PATCH", f"{BASE}/composite/sobjects", True),
    ("POST", "https://login.salesforce.com/services/oauth2/token", True),
    ("POST", f"{BASE}/composite/sobjects", False),
    ("POST", f"{BASE}/jobs/ingest", False),
    ("PUT", f"{BASE}/jobs/ingest/750000000000000001/batches", False),
    ("PATCH", f"{BASE}/jobs/ingest/750000000000000001", False),
])
def test_which_calls_are_sent_twice_on_a_gateway_error(method: str, url: str, harmless: bool) -> None:
    assert sent_twice_is_harmless(method, url) is harmless


def test_after_a_lost_create_two_open_jobs_of_the_user_are_left_alone(salesforce: FakeSalesforce) -> None:
    """Another process of the same integration user created a job in the same second: which one the lost create
    made cannot be told (jobs carry no mark), so neither is used; a new job takes the data."""
    theirs: list[IngestJob] = []
    salesforce.time_out_after_applying(1, kind="bulk.create",
                                       meanwhile=lambda: theirs.append(salesforce.open_job("Contact", "insert")))
    report = client(salesforce).write("Contact", "insert", contacts(30), "WalkMe_Id__c", bulk_threshold=10)
    assert (report.written, report.failed) == (30, [])
    [other] = theirs
    assert (other.state, other.data) == ("Open", None), "another process's job was used or aborted"
    states = sorted((job.state, job.data is None) for job in salesforce.ingest_jobs.values())
    assert states == [("JobComplete", False), ("Open", True), ("Open", True)], "our empty job stays behind"


def test_an_adopted_job_that_holds_another_process_data_is_given_back(salesforce: FakeSalesforce) -> None:
    """The lost create never ran; the one Open job found is another process's, already uploaded: the upload is
    refused as a second content, the job is left as it is (not aborted), and a new job takes the data."""
    theirs: list[IngestJob] = []
    salesforce.time_out_after_applying(1, kind="bulk.create", applied=False, meanwhile=lambda: theirs.append(
        salesforce.open_job("Contact", "insert", data=b"LastName\nTheirs\n")))
    report = client(salesforce).write("Contact", "insert", contacts(30), "WalkMe_Id__c", bulk_threshold=10)
    assert (report.written, report.failed) == (30, [])
    [other] = theirs
    assert (other.state, other.data) == ("Open", b"LastName\nTheirs\n")
    assert len(salesforce.records("Contact")) == 30 and salesforce.calls["bulk.create"] == 2
