"""Repeated external ids in one outbound run are found the way the org's field compares them.

Salesforce compares external ids case-insensitively (``U1`` and ``u1`` are one record) unless the field
is Unique and "case sensitive"; the run asks the org (describe's ``caseSensitive``) and resolves repeats
under that rule before sending: the last record of a key wins.
"""

from __future__ import annotations

from tests.connectors.test_salesforce_outbound_keys import export, last_names, users
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe


def test_keys_differing_in_case_are_one_record_by_default(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    users(walkme, ["u1", "U1", "u2"])
    result = export(salesforce, walkme)
    assert (result.result, result.rows_written, result.duplicate_keys) == ("Succeeded", 2, 1), result
    assert [(d.row, d.replaced_by) for d in result.duplicates] == [(1, 2)]
    assert last_names(salesforce) == {"U1": "U1-v1@acme.example", "u2": "u2-v1@acme.example"}


def test_keys_differing_in_case_are_two_records_for_a_case_sensitive_field(salesforce: FakeSalesforce,
                                                                           walkme: FakeWalkMe) -> None:
    contact = salesforce.store.get("Contact")
    assert contact is not None
    contact.case_sensitive = True
    users(walkme, ["u1", "U1", "u2", "u1"])
    result = export(salesforce, walkme, bulkThreshold=2)
    assert (result.result, result.rows_written, result.duplicate_keys) == ("Succeeded", 3, 1), result
    assert last_names(salesforce) == {"u1": "u1-v2@acme.example", "U1": "U1-v1@acme.example",
                                      "u2": "u2-v1@acme.example"}
