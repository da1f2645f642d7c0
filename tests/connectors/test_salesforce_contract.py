"""The fake org against the real client: simple-salesforce's own public calls only, no code of ours.

The fake is right when simple-salesforce is happy with it. The only test-side piece is the session
(tests.fixtures.salesforce.loopback_session): simple-salesforce builds ``https://<host>`` URLs, and an
adapter mounted on ``https://`` sends them to the fake on 127.0.0.1.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from tests.fakes.salesforce import FakeSalesforce
from tests.fixtures.salesforce import (
    SF_CLIENT_ID,
    SF_CLIENT_SECRET,
    SF_PASSWORD,
    SF_SECURITY_TOKEN,
    SF_USERNAME,
    loopback_session,
)

WAIT = 0.01  # seconds simple-salesforce sleeps before polling a Bulk 2.0 job (its default is 5)


@pytest.fixture
def sf(salesforce: FakeSalesforce) -> Salesforce:
    """Logged in with the password flow of a connected app (security token appended), as simple-salesforce does it."""
    return Salesforce(username=SF_USERNAME, password=SF_PASSWORD + SF_SECURITY_TOKEN, consumer_key=SF_CLIENT_ID,
                      consumer_secret=SF_CLIENT_SECRET, session=loopback_session(salesforce), version="62.0")


def contacts(count: int) -> list[dict[str, object]]:
    return [{"WalkMe_Id__c": f"wm-{i}", "LastName": f"User {i}", "Email": f"user{i}@acme.example",
             "Score__c": i} for i in range(count)]


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---- logins ------------------------------------------------------------------------------------


def test_client_credentials_login_on_a_my_domain_host(salesforce: FakeSalesforce) -> None:
    sf = Salesforce(consumer_key=SF_CLIENT_ID, consumer_secret=SF_CLIENT_SECRET, domain="acme.my",
                    session=loopback_session(salesforce))
    assert sf.limits()["DailyApiRequests"]["Max"] == 15000


def test_jwt_bearer_login_with_simple_salesforces_own_signing(salesforce: FakeSalesforce,
                                                              jwt_keys: tuple[str, str], tmp_path: Path) -> None:
    private, public = jwt_keys
    salesforce.register_jwt_key(SF_CLIENT_ID, public, audience="https://test.salesforce.com")
    key_file = tmp_path / "server.key"
    key_file.write_text(private)
    sf = Salesforce(username=SF_USERNAME, consumer_key=SF_CLIENT_ID, privatekey_file=str(key_file), domain="test",
                    session=loopback_session(salesforce))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    with pytest.raises(SalesforceAuthenticationFailed, match="audience is invalid"):
        Salesforce(username=SF_USERNAME, consumer_key=SF_CLIENT_ID, privatekey=private, domain="login",
                   session=loopback_session(salesforce))


def test_wrong_password_is_refused(salesforce: FakeSalesforce) -> None:
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_grant"):
        Salesforce(username=SF_USERNAME, password="wrong", consumer_key=SF_CLIENT_ID,
                   consumer_secret=SF_CLIENT_SECRET, session=loopback_session(salesforce))


# ---- REST query --------------------------------------------------------------------------------


def test_query_all_pages_through_query_more(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", contacts(450))
    salesforce.page_size = 200
    result = sf.query_all("SELECT WalkMe_Id__c FROM Contact WHERE Score__c >= 50")
    assert result["totalSize"] == 400 and result["records"][0]["attributes"]["type"] == "Contact"
    assert salesforce.calls["query"] == 1 and salesforce.calls["queryMore"] == 1
    assert len(list(sf.query_all_iter("SELECT Id FROM Contact"))) == 450


def test_count_and_date_literals(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    today = datetime.now(UTC).date()
    salesforce.seed("Contact", [
        {"LastName": "Today", "Last_Seen__c": today.isoformat()},
        {"LastName": "Week", "Last_Seen__c": (today - timedelta(days=6)).isoformat()},
        {"LastName": "Old", "Last_Seen__c": (today - timedelta(days=40)).isoformat(),
         "SystemModstamp": "2020-01-01T00:00:00.000+0000"},
    ])
    assert sf.query("SELECT COUNT() FROM Contact") == {"totalSize": 3, "done": True, "records": []}
    assert [r["LastName"] for r in sf.query("SELECT LastName FROM Contact WHERE Last_Seen__c = TODAY")["records"]] \
        == ["Today"]
    week = sf.query("SELECT LastName FROM Contact WHERE Last_Seen__c = LAST_N_DAYS:7 ORDER BY LastName")
    assert [r["LastName"] for r in week["records"]] == ["Today", "Week"]
    assert sf.query("SELECT COUNT() FROM Contact WHERE SystemModstamp < LAST_N_DAYS:30")["totalSize"] == 1
    assert sf.query("SELECT COUNT() FROM Contact WHERE SystemModstamp > 2020-01-01T00:00:00Z")["totalSize"] == 2
    assert sf.query("SELECT COUNT() FROM Contact WHERE SystemModstamp >= 2020-01-01T01:00:00+01:00")[
        "totalSize"] == 3, "an offset is an instant, not text"


def test_malformed_soql_is_salesforces_error_list(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id FORM Contact")
    assert error.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_unknown_route_answers_a_json_error_list(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as error:
        sf.restful("no/such/resource")
    assert error.value.content == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


# ---- single-record sObject endpoints -----------------------------------------------------------


def test_create_get_update_upsert_describe_delete(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    created = sf.Contact.create({"LastName": "Ng", "WalkMe_Id__c": "c1"})
    assert created["success"] is True and created["id"].startswith("003")
    assert sf.Contact.get(created["id"])["LastName"] == "Ng"
    assert sf.Contact.update(created["id"], {"Email": "ng@acme.example"}) == 204
    assert sf.Contact.upsert("WalkMe_Id__c/c1", {"LastName": "Ng Two"}) == 200
    assert sf.Contact.upsert("WalkMe_Id__c/c2", {"LastName": "Ito"}) == 201
    assert sf.Contact.get_by_custom_id("WalkMe_Id__c", "c1")["Email"] == "ng@acme.example"
    assert sorted(r["LastName"] for r in salesforce.records("Contact")) == ["Ito", "Ng Two"]
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["WalkMe_Id__c"]["externalId"] is True and fields["LastName"]["nillable"] is False
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])
    deleted = sf.query_all("SELECT WalkMe_Id__c FROM Contact WHERE IsDeleted = true", include_deleted=True)
    assert [r["WalkMe_Id__c"] for r in deleted["records"]] == ["c1"]


def test_record_errors_come_back_as_the_error_list(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Contact.create({"Email": "x@acme.example"})
    assert error.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.update("003000000000999AAA", {"LastName": "x"})


def test_collections_through_restful(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    body = {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, **c} for c in contacts(3)]}
    body["records"][1]["Email"] = "broken"
    results = sf.restful("composite/sobjects/Contact/WalkMe_Id__c", method="PATCH", json=body)
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"


# ---- Bulk API 2.0 ------------------------------------------------------------------------------


def test_bulk_insert_upsert_update_and_failed_records(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    records = contacts(20)
    records[5]["Email"] = "broken"
    [job] = sf.bulk2.Contact.upsert(records=records, external_id_field="WalkMe_Id__c", wait=WAIT)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (20, 1)
    failed = rows(sf.bulk2.Contact.get_failed_records(job["job_id"]))
    assert [(r["WalkMe_Id__c"], r["sf__Error"].split(":")[0]) for r in failed] == [("wm-5", "INVALID_EMAIL_ADDRESS")]
    ids = {r["WalkMe_Id__c"]: r["Id"] for r in salesforce.records("Contact")}
    [job] = sf.bulk2.Contact.update(records=[{"Id": ids["wm-1"], "LastName": "Renamed"}], wait=WAIT)
    assert job["numberRecordsFailed"] == 0
    [job] = sf.bulk2.Contact.insert(records=[{"LastName": "New"}], wait=WAIT)
    succeeded = rows(sf.bulk2.Contact.get_successful_records(job["job_id"]))
    assert succeeded[0]["sf__Created"] == "true"
    assert {r["LastName"] for r in salesforce.records("Contact")} >= {"Renamed", "New"}


def test_bulk_delete_goes_to_the_recycle_bin_and_hard_delete_does_not(sf: Salesforce,
                                                                      salesforce: FakeSalesforce) -> None:
    ids = salesforce.seed("Contact", contacts(4))
    [job] = sf.bulk2.Contact.delete(records=[{"Id": i} for i in ids[:2]], wait=WAIT)
    assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (2, 0)
    [job] = sf.bulk2.Contact.hard_delete(records=[{"Id": ids[2]}, {"Id": "003000000000999AAA"}], wait=WAIT)
    assert job["numberRecordsFailed"] == 1
    assert [r["Id"] for r in salesforce.records("Contact")] == [ids[3]]
    everything = sf.query_all("SELECT Id FROM Contact", include_deleted=True)["records"]
    assert sorted(r["Id"] for r in everything) == sorted([ids[0], ids[1], ids[3]])


def test_bulk_query_pages_and_keeps_the_header_when_empty(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", contacts(5))
    pages = list(sf.bulk2.Contact.query("SELECT WalkMe_Id__c, Score__c FROM Contact ORDER BY Score__c",
                                        max_records=2, wait=WAIT))
    assert len(pages) == 3
    assert [r["WalkMe_Id__c"] for page in pages for r in rows(page)] == [f"wm-{i}" for i in range(5)]
    [empty] = sf.bulk2.Contact.query("SELECT WalkMe_Id__c, Email FROM Contact WHERE Score__c > 99", wait=WAIT)
    assert empty.splitlines() == ['"WalkMe_Id__c","Email"']


def test_failed_bulk_job_raises_with_its_error_message(sf: Salesforce, salesforce: FakeSalesforce) -> None:
    salesforce.fail_next_bulk_job("InternalServerError : the job could not be processed")
    with pytest.raises(Exception, match="the job could not be processed"):
        sf.bulk2.Contact.insert(records=contacts(2), wait=WAIT)
