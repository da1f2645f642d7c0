"""Bulk job results matched back to their records when Salesforce echoes fewer columns than were sent.

A job's header matches field names whatever their case, but its result files echo only the columns
named exactly as the fields' API names (the fake does the same). The client writes the header by the
API names the object's describe gives, and matches each result by the columns the file does echo, so
a refused record keeps its record number.
"""

from __future__ import annotations

import csv
import io

from simple_salesforce import Salesforce

from tests.connectors.test_salesforce import client
from tests.connectors.test_salesforce_contract import WAIT, sf  # noqa: F401 (the fixture)
from tests.connectors.test_salesforce_outbound_keys import export
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe


def lower_case_contacts(count: int) -> list[dict[str, object]]:
    return [{"walkme_id__c": f"wm-{i}", "lastname": f"User {i}", "EMAIL": f"user{i}@acme.example"}
            for i in range(count)]


def test_the_fake_echoes_only_columns_named_exactly(sf: Salesforce) -> None:  # noqa: F811
    records = [{"WalkMe_Id__c": "wm-1", "lastname": "A", "Email": "broken"}]
    [job] = sf.bulk2.Contact.upsert(records=records, external_id_field="WalkMe_Id__c", wait=WAIT)
    header = next(csv.reader(io.StringIO(sf.bulk2.Contact.get_failed_records(job["job_id"]))))
    assert header[:2] == ["sf__Id", "sf__Error"] and sorted(header[2:]) == ["Email", "WalkMe_Id__c"]


def test_a_failure_sent_with_lower_case_field_names_keeps_its_index(salesforce: FakeSalesforce) -> None:
    records = lower_case_contacts(30)
    records[17]["EMAIL"] = "broken"
    report = client(salesforce).write("Contact", "upsert", records, "walkme_id__c", bulk_threshold=10)
    assert report.written == 29
    assert report.failed == [(17, "Email: invalid email address: broken")]
    [job] = salesforce.ingest_jobs.values()
    assert (job.data or b"").split(b"\n", 1)[0] == b"WalkMe_Id__c,LastName,Email", "the header by API names"
    assert salesforce.calls["describe"] == 1


def test_identical_echoed_rows_each_find_a_record(salesforce: FakeSalesforce) -> None:
    """Two refused records with the same values both come back with an index, one each."""
    records = [{"LastName": "Same", "Email": "broken"} for _ in range(2)] + \
        [{"LastName": f"n{i}", "Email": f"n{i}@acme.example"} for i in range(10)]
    report = client(salesforce).write("Contact", "insert", records, None, bulk_threshold=10)
    assert [i for i, _ in report.failed] == [0, 1] and report.written == 10


def test_an_outbound_run_mapped_to_lower_case_fields_names_the_refused_record(salesforce: FakeSalesforce,
                                                                            walkme: FakeWalkMe) -> None:
    walkme.seed("users", [{"userId": f"u{i}", "email": "broken" if i == 11 else f"u{i}@acme.example",
                           "updatedAt": f"2026-11-20T08:00:{i:02d}Z"} for i in range(20)])
    mapping = {"key": {"source": "userId", "destination": "walkme_id__c"},
               "fields": [{"source": "userId", "destination": "lastname"}, {"source": "email", "destination": "email"}]}
    result = export(salesforce, walkme, mapping=mapping, bulkThreshold=5, externalIdField="walkme_id__c")
    assert (result.rows_written, result.rows_rejected) == (19, 1), result
    assert result.rejected[0].row == 12 and "invalid email address" in result.rejected[0].reason
