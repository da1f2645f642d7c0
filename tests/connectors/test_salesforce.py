"""SalesforceClient against the fake Salesforce org (REST, sObject Collections, Bulk API 2.0) on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from tests.fakes.salesforce import FakeSalesforce
from tests.fixtures.pki import rsa_key_pair
from tests.fixtures.salesforce import (
    SF_CLIENT_ID,
    SF_CLIENT_SECRET,
    SF_PASSWORD,
    SF_REFRESH_TOKEN,
    SF_SECURITY_TOKEN,
    SF_USERNAME,
)
from walkme_dic.api.connection import SalesforceProvider
from walkme_dic.connectors.salesforce import SalesforceClient, jwt_audience
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError, ValidationError

CLIENT_CREDENTIALS = {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET}


def client(fake: FakeSalesforce, credentials: dict[str, str] | None = None, *, login_url: bool = False,
           **options: object) -> SalesforceClient:
    url_key = "loginUrl" if login_url else "instanceUrl"
    spec = SalesforceProvider.model_validate({url_key: fake.url, "apiVersion": "62.0",
                                              "auth": {"secretRef": {"name": "sf"}}})
    settings: dict[str, object] = {"retry_base_delay": 0.001, "poll_interval": 0.001, "forward": {"https://": fake.url},
                                   **options}
    return SalesforceClient(spec, credentials or CLIENT_CREDENTIALS, **settings)  # type: ignore[arg-type]


def contacts(count: int, start: int = 0) -> list[dict[str, object]]:
    return [{"WalkMe_Id__c": f"wm-{i}", "LastName": f"User {i}", "Email": f"user{i}@acme.example",
             "Score__c": i % 100, "Active__c": i % 2 == 0} for i in range(start, start + count)]


# ---- login and probe ---------------------------------------------------------------------------


def test_probe_reports_remaining_api_requests(salesforce: FakeSalesforce) -> None:
    message = client(salesforce).probe().message
    assert "API requests remaining" in message and "/15000" in message


@pytest.mark.parametrize("credentials", [
    {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET, "refreshToken": SF_REFRESH_TOKEN},
    {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET, "username": SF_USERNAME,
     "password": SF_PASSWORD, "securityToken": SF_SECURITY_TOKEN},
], ids=["refresh-token", "username-password"])
def test_other_oauth_flows_log_in(salesforce: FakeSalesforce, credentials: dict[str, str]) -> None:
    assert "remaining" in client(salesforce, credentials, login_url=True).probe().message


def jwt_credentials(private_key: str, username: str = SF_USERNAME) -> dict[str, str]:
    return {"clientId": SF_CLIENT_ID, "username": username, "privateKey": private_key}


def hosted_client(fake: FakeSalesforce, credentials: dict[str, str], login_url: str) -> SalesforceClient:
    """A Connection naming a real Salesforce login host; the session's https:// adapter reaches the fake."""
    spec = SalesforceProvider.model_validate({"loginUrl": login_url, "auth": {"secretRef": {"name": "sf"}}})
    return SalesforceClient(spec, credentials, retry_base_delay=0.001, forward={"https://": fake.url})


@pytest.mark.parametrize(("credentials", "flow"), [
    (CLIENT_CREDENTIALS, "client credentials"),
    ({"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET, "refreshToken": SF_REFRESH_TOKEN}, "refresh token"),
    ({"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET, "username": SF_USERNAME,
      "password": SF_PASSWORD, "securityToken": SF_SECURITY_TOKEN}, "username-password"),
    ("jwt", "JWT bearer"),
], ids=["client-credentials", "refresh-token", "username-password", "jwt-bearer"])
def test_probe_names_the_flow_the_org_and_the_user_never_a_secret(
        salesforce: FakeSalesforce, jwt_keys: tuple[str, str], credentials: dict[str, str] | str, flow: str) -> None:
    private, public = jwt_keys
    salesforce.register_jwt_key(SF_CLIENT_ID, public)
    secret = jwt_credentials(private) if credentials == "jwt" else credentials
    assert isinstance(secret, dict)
    message = hosted_client(salesforce, secret, "https://acme.my.salesforce.com").probe().message
    assert f"logged in with the {flow} flow" in message and "org 00D000000000001EAA" in message
    assert "user 005000000000001AAA" in message and "remaining" in message
    if "username" in secret:
        assert SF_USERNAME in message
    for key, value in secret.items():
        if key not in ("clientId", "username"):
            assert all(part not in message for part in value.splitlines() if len(part) > 8), key


def test_jwt_bearer_signs_for_the_sandbox_audience(salesforce: FakeSalesforce, jwt_keys: tuple[str, str]) -> None:
    private, public = jwt_keys
    salesforce.register_jwt_key(SF_CLIENT_ID, public, audience="https://test.salesforce.com")
    credentials = jwt_credentials(private)
    assert "JWT bearer" in hosted_client(salesforce, credentials, "https://test.salesforce.com").probe().message
    with pytest.raises(AuthenticationError, match=r"JWT bearer login .*\(audience is invalid\)"):
        hosted_client(salesforce, credentials, "https://login.salesforce.com").probe()
    sandbox_my_domain = "https://acme--uat.sandbox.my.salesforce.com"
    assert "remaining" in hosted_client(salesforce, credentials, sandbox_my_domain).probe().message


@pytest.mark.parametrize(("login_url", "audience"), [
    ("https://login.salesforce.com", "https://login.salesforce.com"),
    ("https://test.salesforce.com/", "https://test.salesforce.com"),
    ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
    ("https://sso.acme.example/salesforce", "https://sso.acme.example/salesforce"),
])
def test_jwt_audience_follows_the_login_host(login_url: str, audience: str) -> None:
    assert jwt_audience(login_url) == audience


def test_jwt_signed_by_another_key_is_refused_without_showing_the_key(
        salesforce: FakeSalesforce, jwt_keys: tuple[str, str]) -> None:
    salesforce.register_jwt_key(SF_CLIENT_ID, jwt_keys[1])
    other_private, _ = rsa_key_pair()
    with pytest.raises(AuthenticationError, match=r"invalid_grant \(invalid assertion\)") as error:
        hosted_client(salesforce, jwt_credentials(other_private), "https://login.salesforce.com").probe()
    assert "PRIVATE KEY" not in str(error.value) and other_private[40:80] not in str(error.value)


def test_jwt_for_a_user_the_org_does_not_know_is_refused(salesforce: FakeSalesforce,
                                                         jwt_keys: tuple[str, str]) -> None:
    salesforce.register_jwt_key(SF_CLIENT_ID, jwt_keys[1])
    with pytest.raises(AuthenticationError, match=r"user 'ghost@acme\.example'.*hasn't approved this consumer"):
        hosted_client(salesforce, jwt_credentials(jwt_keys[0], "ghost@acme.example"),
                      "https://login.salesforce.com").probe()


@pytest.mark.parametrize(("credentials", "expected"), [
    ({"clientId": SF_CLIENT_ID, "privateKey": "-----BEGIN PRIVATE KEY-----\nsecret-bits\n"}, "no username"),
    ({"clientId": SF_CLIENT_ID, "username": SF_USERNAME, "privateKey": "secret-bits-not-pem"}, "not a PEM RSA"),
    ({"clientSecret": SF_CLIENT_SECRET}, "needs clientId"),
    ({"clientId": SF_CLIENT_ID}, "needs clientSecret with clientId"),
])
def test_unusable_secret_fails_before_any_call_naming_the_key(
        salesforce: FakeSalesforce, credentials: dict[str, str], expected: str) -> None:
    with pytest.raises(AuthenticationError, match=expected) as error:
        client(salesforce, credentials).probe()
    assert "secret-bits" not in str(error.value) and SF_CLIENT_SECRET not in str(error.value)
    assert salesforce.calls["token"] == 0


def test_bad_secret_is_an_authentication_error_without_the_secret(salesforce: FakeSalesforce) -> None:
    with pytest.raises(AuthenticationError) as error:
        client(salesforce, {"clientId": SF_CLIENT_ID, "clientSecret": "wrong-secret-value"}).probe()
    assert "invalid_client" in str(error.value) and SF_CLIENT_ID in str(error.value)
    assert "wrong-secret-value" not in str(error.value)


def test_bad_password_names_the_flow_not_the_password(salesforce: FakeSalesforce) -> None:
    credentials = {**CLIENT_CREDENTIALS, "username": SF_USERNAME, "password": "not-the-password"}
    with pytest.raises(AuthenticationError, match=r"username-password.*invalid_grant") as error:
        client(salesforce, credentials).probe()
    assert "not-the-password" not in str(error.value)


def test_expired_session_logs_in_again(salesforce: FakeSalesforce) -> None:
    sf = client(salesforce)
    sf.probe()
    salesforce.access_tokens.clear()
    assert "remaining" in sf.probe().message
    assert list(sf.query("SELECT Id FROM Contact")) == []


# ---- query -------------------------------------------------------------------------------------


def test_query_streams_every_page_without_attributes(salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", contacts(1050))
    salesforce.page_size = 200
    rows = list(client(salesforce).query("SELECT Id, WalkMe_Id__c, Email FROM Contact WHERE Active__c = true"))
    assert len(rows) == 525 and "attributes" not in rows[0]
    assert set(rows[0]) == {"Id", "WalkMe_Id__c", "Email"}
    assert salesforce.calls["query"] == 1 and salesforce.calls["queryMore"] == 2


def test_query_filters_orders_and_limits(salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", contacts(20))
    rows = list(client(salesforce).query(
        "SELECT WalkMe_Id__c, Score__c FROM Contact WHERE Score__c >= 5 AND Email LIKE 'user1%' "
        "ORDER BY Score__c DESC LIMIT 3"))
    assert [r["WalkMe_Id__c"] for r in rows] == ["wm-19", "wm-18", "wm-17"]


def test_unknown_column_is_permanent_and_named(salesforce: FakeSalesforce) -> None:
    with pytest.raises(PermanentError) as error:
        list(client(salesforce).query("SELECT Id, Emial FROM Contact"))
    message = str(error.value)
    assert message.startswith("SOQL: No such column 'Emial' on entity 'Contact'")
    assert "INVALID_FIELD" in message and SF_CLIENT_SECRET not in message


def test_unknown_object_is_permanent(salesforce: FakeSalesforce) -> None:
    with pytest.raises(PermanentError, match="sObject type 'Contct' is not supported"):
        list(client(salesforce).query("SELECT Id FROM Contct"))


def test_malformed_query_is_permanent(salesforce: FakeSalesforce) -> None:
    with pytest.raises(PermanentError, match="MALFORMED_QUERY"):
        list(client(salesforce).query("SELECT Id FORM Contact"))


# ---- sObject Collections -----------------------------------------------------------------------


def test_collections_upsert_writes_good_records_and_reports_the_bad_one(salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", [{"WalkMe_Id__c": "wm-1", "LastName": "Old"}])
    records = contacts(450)
    records[1]["LastName"] = "Updated"
    records[321]["Score__c"] = "lots"
    report = client(salesforce).write("Contact", "upsert", iter(records), "WalkMe_Id__c")
    assert report.written == 449
    assert report.failed == [(321, "Score__c: value not of required type: lots")]
    assert report.api_calls == 3  # three collections of ≤ 200 (the OAuth token request does not count)
    stored = {r["WalkMe_Id__c"]: r for r in salesforce.records("Contact")}
    assert len(stored) == 449 and stored["wm-1"]["LastName"] == "Updated"
    assert "wm-321" not in stored


def test_collections_insert_and_update_by_id(salesforce: FakeSalesforce) -> None:
    sf = client(salesforce)
    report = sf.write("Contact", "insert", [{"LastName": "A"}, {"Email": "b@acme.example"}], None)
    assert report.written == 1 and report.failed == [(1, "LastName: Required fields are missing: [LastName]")]
    [created] = salesforce.records("Contact")
    report = sf.write("Contact", "update", [{"Id": created["Id"], "Email": "a@acme.example"},
                                            {"Id": "003000000000999AAA", "Email": "x@acme.example"}], None)
    assert report.written == 1
    assert report.failed == [(1, "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id")]
    assert salesforce.records("Contact")[0]["Email"] == "a@acme.example"


def test_upsert_without_external_id_is_rejected_before_any_call(salesforce: FakeSalesforce) -> None:
    with pytest.raises(ValidationError, match="externalIdField"):
        client(salesforce).write("Contact", "upsert", [{"LastName": "A"}], None)
    assert salesforce.api_calls == 0


def test_unknown_field_in_collections_is_permanent(salesforce: FakeSalesforce) -> None:
    with pytest.raises(PermanentError, match="No such column 'Emial'"):
        client(salesforce).write("Contact", "upsert", [{"WalkMe_Id__c": "a", "Emial": "x"}], "WalkMe_Id__c")


# ---- Bulk API 2.0 ------------------------------------------------------------------------------


def test_bulk_upsert_of_5000_rows_uses_few_calls_and_reads_failures_back(salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", [{"WalkMe_Id__c": "wm-7", "LastName": "Old"}])
    records = contacts(5000)
    records[10]["Email"] = "not-an-email"
    records[4321]["LastName"] = None  # '#N/A' in CSV: clearing a required field
    records[4999]["Score__c"] = "n/a"
    report = client(salesforce).write("Contact", "upsert", (r for r in records), "WalkMe_Id__c")
    assert report.written == 4997
    assert report.failed == [
        (10, "Email: invalid email address: not-an-email"),
        (4321, "LastName: Required fields are missing: [LastName]"),
        (4999, "Score__c: value not of required type: n/a"),
    ]
    assert salesforce.calls["collections"] == 0 and salesforce.calls["bulk.create"] == 1
    assert report.api_calls <= 5000 // 100  # ≤ 1% of one call per record
    stored = {r["WalkMe_Id__c"]: r for r in salesforce.records("Contact")}
    assert len(stored) == 4997 and stored["wm-7"]["LastName"] == "User 7"
    assert stored["wm-8"]["Active__c"] is True and stored["wm-8"]["Score__c"] == 8


def test_bulk_splits_into_one_job_per_upload_limit(salesforce: FakeSalesforce) -> None:
    report = client(salesforce, bulk_max_bytes=64 * 1024).write(
        "Contact", "insert", contacts(3000), None, bulk_threshold=1000)
    assert report.written == 3000 and report.failed == []
    assert salesforce.calls["bulk.create"] == salesforce.calls["bulk.upload"] > 1
    assert all(len(job.data or b"") <= 64 * 1024 for job in salesforce.ingest_jobs.values())


def test_bulk_rows_with_fields_unseen_in_the_first_rows_are_rejected(salesforce: FakeSalesforce) -> None:
    records = contacts(30)
    records[25]["FirstName"] = "Late"
    report = client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=20)
    assert report.written == 29 and [i for i, _ in report.failed] == [25]
    assert report.failed[0][1].startswith("FirstName: not among the fields of the first 20 records")


def test_bulk_job_that_ends_failed_twice_is_a_clear_error(salesforce: FakeSalesforce) -> None:
    """The records a Failed job left are sent once more in a new job; when that one fails too, the run stops."""
    salesforce.fail_next_bulk_job("InternalServerError : the job could not be processed")
    salesforce.fail_next_bulk_job("InternalServerError : the job could not be processed")
    with pytest.raises(PermanentError) as error:
        client(salesforce).write("Contact", "upsert", contacts(50), "WalkMe_Id__c", bulk_threshold=10)
    message = str(error.value)
    assert message == "Bulk API upsert Contact: the job did not complete: InternalServerError : the job could not be " \
                      "processed"
    assert error.value.reason == "BulkJobFailed"
    assert [job.state for job in salesforce.ingest_jobs.values()] == ["Failed", "Failed"]
    assert not salesforce.records("Contact")


def test_bulk_job_with_an_unknown_column_fails_naming_it(salesforce: FakeSalesforce) -> None:
    records = [{"WalkMe_Id__c": f"wm-{i}", "LastName": "x", "Emial": "a@b.io"} for i in range(20)]
    with pytest.raises(PermanentError, match="Field name not found : Emial"):
        client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)


# ---- retries -----------------------------------------------------------------------------------


def test_request_limit_exceeded_twice_then_success_is_retried(salesforce: FakeSalesforce) -> None:
    salesforce.seed("Contact", contacts(3))
    salesforce.throttle(2, kind="query")
    rows = list(client(salesforce).query("SELECT Id FROM Contact"))
    assert len(rows) == 3 and salesforce.calls["query"] == 3


def test_throttled_collections_write_is_retried_without_duplicates(salesforce: FakeSalesforce) -> None:
    salesforce.throttle(2, kind="collections")
    report = client(salesforce).write("Contact", "insert", [{"LastName": "Once"}], None)
    assert report.written == 1 and report.api_calls == 3
    assert len(salesforce.records("Contact")) == 1


def test_bulk_upload_and_results_survive_503_with_the_whole_file_resent(salesforce: FakeSalesforce) -> None:
    salesforce.unavailable(1, kind="bulk.upload")
    salesforce.unavailable(1, kind="bulk.results")
    records = contacts(40)
    records[3]["Email"] = "broken"
    report = client(salesforce).write("Contact", "upsert", records, "WalkMe_Id__c", bulk_threshold=10)
    assert report.written == 39 and [i for i, _ in report.failed] == [3]
    [job] = salesforce.ingest_jobs.values()
    assert (job.data or b"").count(b"\n") == 41  # header and every row, not a tail after the first try
    assert salesforce.calls["bulk.upload"] == 2


def test_persistent_503_is_transient(salesforce: FakeSalesforce) -> None:
    salesforce.unavailable(100, kind="limits")
    with pytest.raises(TransientError, match="503") as error:
        client(salesforce, max_attempts=3).probe()
    assert error.value.reason == "SalesforceUnavailable" and salesforce.calls["limits"] == 3


def test_503_with_retry_after_waits_as_told(salesforce: FakeSalesforce) -> None:
    salesforce.unavailable(1, kind="limits", retry_after=1)
    started = time.monotonic()
    assert "remaining" in client(salesforce).probe().message  # the backoff alone would wait 1 ms
    assert time.monotonic() - started >= 1.0 and salesforce.calls["limits"] == 2


def test_access_denied_is_permanent_and_not_retried(salesforce: FakeSalesforce) -> None:
    salesforce.fail_next(5, 403, kind="collections", error_code="INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                         message="insufficient access rights on cross-reference id")
    with pytest.raises(PermanentError, match=r"denied access .*insufficient access rights") as error:
        client(salesforce).write("Contact", "insert", [{"LastName": "A"}], None)
    assert error.value.reason == "AccessDenied" and salesforce.calls["collections"] == 1


def test_persistent_throttling_is_transient(salesforce: FakeSalesforce) -> None:
    salesforce.throttle(100, kind="bulk.create")
    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED"):
        client(salesforce, max_attempts=2).write("Contact", "insert", contacts(20), None, bulk_threshold=10)


def test_unreachable_org_is_transient(salesforce: FakeSalesforce) -> None:
    spec = SalesforceProvider.model_validate({"instanceUrl": "http://127.0.0.1:9", "auth": {"secretRef": {
        "name": "sf"}}})
    with pytest.raises(TransientError, match="cannot reach"):
        SalesforceClient(spec, CLIENT_CREDENTIALS, max_attempts=2, retry_base_delay=0.001).probe()
