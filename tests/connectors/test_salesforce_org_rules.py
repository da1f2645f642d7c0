"""The fake org refuses what a real org refuses (issue 26, row 8), and the client knows it beforehand where it can.

Limits (the 24-hour API allocation), the JWT bearer assertion's lifetime, the login host of the client
credentials flow, retired and unknown API versions, and a Bulk job's line ending and delimiter. Each case
is driven through simple-salesforce (the fake must satisfy it) and, where the client is involved, through
the real client.
"""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from tests.connectors.test_salesforce import CLIENT_CREDENTIALS, client, contacts, hosted_client, jwt_credentials
from tests.connectors.test_salesforce_contract import WAIT, sf  # noqa: F401 (the fixture)
from tests.fakes.salesforce import FakeSalesforce
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET, SF_USERNAME, loopback_session
from walkme_dic.api.connection import SalesforceProvider
from walkme_dic.connectors.salesforce import SalesforceClient
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError, ValidationError

# ---- the 24-hour API allocation ----------------------------------------------------------------


def test_past_the_daily_allocation_every_call_is_refused(sf: Salesforce, salesforce: FakeSalesforce) -> None:  # noqa: F811
    """Before: the fake answered 200 with Sforce-Limit-Info api-usage=43/5."""
    salesforce.daily_limit = salesforce.api_calls + 1
    sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceRefusedRequest, match="TotalRequests Limit exceeded"):
        sf.query("SELECT Id FROM Contact")


def test_the_client_does_not_retry_a_used_up_allocation(salesforce: FakeSalesforce) -> None:
    salesforce.daily_limit = 0
    with pytest.raises(TransientError, match="API requests of the last 24 hours are used up") as error:
        client(salesforce).write("Contact", "upsert", contacts(3), "WalkMe_Id__c")
    assert error.value.reason == "SalesforceThrottled" and salesforce.calls["collections"] == 1


def test_the_concurrency_limit_is_retried(salesforce: FakeSalesforce) -> None:
    salesforce.throttle(1, kind="collections")
    report = client(salesforce).write("Contact", "upsert", contacts(3), "WalkMe_Id__c")
    assert report.written == 3 and salesforce.calls["collections"] == 2


# ---- JWT bearer: an assertion lives at most 3 minutes -------------------------------------------


def assertion(private_key: str, lifetime: int) -> str:
    return jwt.encode({"iss": SF_CLIENT_ID, "sub": SF_USERNAME, "aud": "https://login.salesforce.com",
                       "exp": int(time.time()) + lifetime}, private_key, algorithm="RS256")


@pytest.mark.parametrize(("lifetime", "answer"), [(170, 200), (24 * 3600, 400)])
def test_a_jwt_valid_longer_than_3_minutes_is_refused(salesforce: FakeSalesforce, jwt_keys: tuple[str, str],
                                                      lifetime: int, answer: int) -> None:
    private, public = jwt_keys
    salesforce.register_jwt_key(SF_CLIENT_ID, public)
    response = requests.post(f"{salesforce.url}/services/oauth2/token", timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion(private, lifetime)})
    assert response.status_code == answer, response.text
    if answer != 200:
        assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_the_clients_own_jwt_is_accepted(salesforce: FakeSalesforce, jwt_keys: tuple[str, str]) -> None:
    private, public = jwt_keys
    salesforce.register_jwt_key(SF_CLIENT_ID, public)
    assert "JWT bearer" in hosted_client(salesforce, jwt_credentials(private), "https://login.salesforce.com") \
        .probe().message


# ---- client credentials: only at the org's My Domain --------------------------------------------


def test_client_credentials_at_the_generic_login_host_are_refused(salesforce: FakeSalesforce) -> None:
    """simple-salesforce itself sends this flow only to My Domain hosts; the fake playing one logs it in."""
    salesforce.host = "login.salesforce.com"
    response = requests.post(f"{salesforce.url}/services/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": SF_CLIENT_ID, "client_secret": SF_CLIENT_SECRET})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "request not supported on this domain"}
    salesforce.host = "acme.my.salesforce.com"
    Salesforce(consumer_key=SF_CLIENT_ID, consumer_secret=SF_CLIENT_SECRET, domain="acme.my",
               session=loopback_session(salesforce))


@pytest.mark.parametrize("host", ["https://login.salesforce.com", "https://test.salesforce.com/"])
def test_the_client_asks_for_my_domain_before_any_call(salesforce: FakeSalesforce, host: str) -> None:
    with pytest.raises(AuthenticationError, match=r"not served at .*salesforce.com: .* My Domain"):
        hosted_client(salesforce, CLIENT_CREDENTIALS, host).probe()
    assert sum(salesforce.calls.values()) == 0


# ---- API versions ------------------------------------------------------------------------------


def logged_in(fake: FakeSalesforce, version: str) -> Salesforce:
    return Salesforce(consumer_key=SF_CLIENT_ID, consumer_secret=SF_CLIENT_SECRET, domain="acme.my",
                      session=loopback_session(fake), version=version)


def test_a_retired_api_version_is_gone(salesforce: FakeSalesforce) -> None:
    with pytest.raises(SalesforceError) as error:
        logged_in(salesforce, "30.0").query("SELECT Id FROM Contact")
    assert error.value.status == 410


def test_a_version_newer_than_the_org_and_bulk_before_41_are_not_found(salesforce: FakeSalesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        logged_in(salesforce, "99.0").query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceResourceNotFound):
        logged_in(salesforce, "40.0").bulk2.Contact.insert(records=contacts(2), wait=WAIT)
    assert logged_in(salesforce, "40.0").query("SELECT Id FROM Contact")["totalSize"] == 0


def versioned(fake: FakeSalesforce, version: str) -> SalesforceClient:
    spec = SalesforceProvider.model_validate({"instanceUrl": fake.url, "apiVersion": version,
                                              "auth": {"secretRef": {"name": "sf"}}})
    return SalesforceClient(spec, CLIENT_CREDENTIALS, retry_base_delay=0.001, poll_interval=0.001)


def test_the_client_refuses_a_retired_version_before_any_call(salesforce: FakeSalesforce) -> None:
    with pytest.raises(PermanentError, match=r"retired API versions before 31\.0") as error:
        versioned(salesforce, "30.0").probe()
    assert error.value.reason == "InvalidSpec" and sum(salesforce.calls.values()) == 0


def test_bulk_writes_need_version_41(salesforce: FakeSalesforce) -> None:
    with pytest.raises(ValidationError, match=r"Bulk API 2\.0, which needs API version 41\.0"):
        versioned(salesforce, "40.0").write("Contact", "upsert", contacts(20), "WalkMe_Id__c",
                                                     bulk_threshold=10)
    assert versioned(salesforce, "40.0").write("Contact", "upsert", contacts(3), "WalkMe_Id__c").written == 3


# ---- a Bulk job's line ending and delimiter ----------------------------------------------------


def ingest(sf: Salesforce, data: str, **job: str) -> dict[str, object]:  # noqa: F811
    bulk = sf.bulk2.Contact._client
    job_id = bulk.create_job("insert", **job)["id"]
    bulk.upload_job_data(job_id, data)
    bulk.close_job(job_id)
    while (info := bulk.get_job(job_id, False))["state"] not in ("JobComplete", "Failed", "Aborted"):
        time.sleep(WAIT)
    return dict(info)


def test_crlf_data_in_an_lf_job_fails_the_job(sf: Salesforce, salesforce: FakeSalesforce) -> None:  # noqa: F811
    job = ingest(sf, "LastName,Email\r\nA,a@acme.example\r\n")
    assert job["state"] == "Failed"
    assert job["errorMessage"] == "ClientInputError : LineEnding is invalid on user data. Current LineEnding " \
                                  "setting is LF"
    assert ingest(sf, "LastName,Email\r\nA,a@acme.example\r\n", line_ending="CRLF")["state"] == "JobComplete"
    assert ingest(sf, 'LastName,Email\n"two\r\nlines",b@acme.example\n')["state"] == "JobComplete", \
        "a line end inside quotes is a value"


def test_the_jobs_delimiter_is_honoured(sf: Salesforce, salesforce: FakeSalesforce) -> None:  # noqa: F811
    job = ingest(sf, "LastName;Email\nSemi;semi@acme.example\n", column_delimiter="SEMICOLON")
    assert (job["state"], job["numberRecordsFailed"], job["columnDelimiter"]) == ("JobComplete", 0, "SEMICOLON")
    assert [r["Email"] for r in salesforce.records("Contact")] == ["semi@acme.example"]


def test_values_with_line_ends_go_through_the_clients_lf_job(salesforce: FakeSalesforce) -> None:
    records = contacts(12)
    records[4]["LastName"] = "first line\r\nsecond line"
    report = client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    assert (report.written, report.failed) == (12, [])
    assert any(r["LastName"] == "first line\r\nsecond line" for r in salesforce.records("Contact"))
