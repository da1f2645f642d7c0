"""Every inbound row is accounted for: written, rejected (by validation or by WalkMe), or left out as a
duplicate key — through the real engine, files in moto's S3 and the fake WalkMe (issue 11)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.fakes.faultproxy import FaultProxy
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_TOKEN
from tests.reliability.bad_inputs.test_bad_inputs import CREDENTIALS
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

FIELDS = [{"source": "plan", "destination": "plan"}, {"source": "since", "destination": "since"}]


def request(endpoint: str, bucket: str, walkme: FakeWalkMe, *, file: dict[str, Any] | None = None,
            source: dict[str, Any] | None = None, connection: dict[str, Any] | None = None,
            **spec: Any) -> SyncRequest:
    return SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "accounting"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
        "force": True,
        "spec": {"direction": "Inbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "w"},
                 "source": source or {"file": {"path": "users.csv", **(file or {})}},
                 "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                            "userIdProperty": "uuid"}},
                 "mapping": {"key": {"source": "id", "destination": "uuid"}, "fields": FIELDS}, **spec},
        "connection": connection or {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": endpoint}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })


def users_csv(rows: list[tuple[str, str, str]], header: str = "id,plan,since") -> bytes:
    return (header + "\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)).encode()


def import_file(moto: str, bucket: str, walkme: FakeWalkMe, body: bytes, **spec: Any) -> SyncResult:
    s3_client(moto).put_object(Bucket=bucket, Key="users.csv", Body=body)
    return run_sync(request(moto, bucket, walkme, **spec), CREDENTIALS)


def rows_with_bad_since(count: int, bad: set[int]) -> list[tuple[str, str, str]]:
    """WalkMe has `since` as a Date property; the listed rows hold a value that is not a date."""
    return [(f"u{row}", "gold", "soon" if row in bad else "2024-01-01") for row in range(1, count + 1)]


def test_rows_walkme_refuses_are_rejected_and_fail_the_run_over_the_limit(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    walkme.define_properties({"plan": "Number"})  # another integration made `plan` a Number
    result = import_file(moto_server, bucket, walkme, users_csv(rows_with_bad_since(250, set())), maxRejectedRows=0)
    assert (result.result, result.reason) == ("Failed", "PartiallyApplied"), result
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (250, 0, 250)
    assert "0 rows were applied" in result.message and "250 refused by WalkMe" in result.message
    assert [r.row for r in result.rejected] == list(range(2, 22)), "each row with its own line (header: line 1)"
    assert all(f"line {r.row}: WalkMe refused it: attribute 'plan' is a Number property" in r.reason
               for r in result.rejected)
    assert result.source_fingerprint is None, "a failed run does not mark the file as imported"


def test_a_run_whose_every_row_walkme_refused_is_not_a_success(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    """Issue 21: with no maxRejected* set, WalkMe refusing all 5 rows was Ready=True RunSucceeded, wrote 0."""
    walkme.define_properties({"plan": "Number"})
    result = import_file(moto_server, bucket, walkme, users_csv(rows_with_bad_since(5, set())))
    assert (result.result, result.reason, result.rows_written, result.rows_rejected) == \
        ("Failed", "NothingApplied", 0, 5), result
    assert result.message.startswith("WalkMe refused every one of the 5 records sent (first: line 2: ")
    assert result.source_fingerprint is None


def test_a_file_whose_every_row_is_rejected_sends_nothing_and_fails(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    result = import_file(moto_server, bucket, walkme, users_csv([("", "gold", "2024-01-01")] * 3))
    assert (result.result, result.reason, result.rows_read, result.rows_rejected) == \
        ("Failed", "NothingApplied", 3, 3), result
    assert "every one of the 3 rows was rejected; nothing was sent" in result.message
    assert walkme.users(WALKME_TOKEN) == {}


@pytest.mark.parametrize("bad", [{150}, {1}, {250}, {100, 101}, {7, 77, 177, 200, 201}, set(range(90, 111))],
                         ids=lambda bad: ",".join(map(str, sorted(bad)))[:30])
def test_refused_rows_are_named_and_every_other_row_is_applied(
        moto_server: str, bucket: str, walkme: FakeWalkMe, bad: set[int]) -> None:
    walkme.define_properties({"since": "Date"})
    result = import_file(moto_server, bucket, walkme, users_csv(rows_with_bad_since(250, bad)))
    assert (result.result, result.reason) == ("Succeeded", "Synced"), result
    assert (result.rows_written, result.rows_rejected) == (250 - len(bad), len(bad))
    assert [r.row for r in result.rejected] == [row + 1 for row in sorted(bad)[:20]], "the line: the header is 1"
    assert all("'since' is a Date property; 'soon' is not a Date" in r.reason for r in result.rejected)
    assert set(walkme.users(WALKME_TOKEN)) == {f"u{row}" for row in range(1, 251)} - {f"u{row}" for row in bad}


def test_validation_and_send_time_rejections_count_together(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    walkme.define_properties({"since": "Date"})
    rows = [f"u{row},gold,{'soon' if row == 4 else '2024-01-01'},{'x' if row == 9 else row}" for row in range(1, 11)]
    body = ("id,plan,since,seats\n" + "\n".join(rows) + "\n").encode()
    mapping = {"key": {"source": "id", "destination": "uuid"},
               "fields": [*FIELDS, {"source": "seats", "destination": "seats", "type": "number"}]}
    result = import_file(moto_server, bucket, walkme, body, maxRejectedRows=1, mapping=mapping)
    assert (result.result, result.reason) == ("Failed", "PartiallyApplied"), result
    assert sorted(r.row for r in result.rejected) == [5, 10]
    reasons = {r.row: r.reason for r in result.rejected}
    assert "WalkMe refused it" in reasons[5] and "column 'seats'" in reasons[10]
    assert result.rows_written == 8 and "8 rows were applied" in result.message


def test_a_send_that_stops_says_how_far_it_came(moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    walkme.fail_next("/user/data$", 1, 403, body='{"error": "forbidden", "message": "token revoked"}')
    result = import_file(moto_server, bucket, walkme, users_csv(rows_with_bad_since(250, set())))
    assert (result.result, result.reason) == ("Failed", "AuthenticationFailed"), result
    acknowledged = re.search(r"WalkMe acknowledged at least (\d+) of 250 rows", result.message)
    assert acknowledged is not None, result.message
    assert int(acknowledged.group(1)) <= len(walkme.users(WALKME_TOKEN)) <= 200


def test_over_the_limit_before_sending_writes_nothing(moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    rows = [("", "gold", "2024-01-01"), *rows_with_bad_since(5, set())]
    result = import_file(moto_server, bucket, walkme, users_csv(rows), maxRejectedRows=0)
    assert (result.result, result.reason) == ("Failed", "TooManyRejectedRows")
    assert walkme.requests["/public/v1/user/data"] == 0 and walkme.users(WALKME_TOKEN) == {}


def test_last_row_of_a_key_wins_although_its_batch_lands_first(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    rows = [(f"u{row}", f"plan-{row}", "2024-01-01") for row in range(1, 1001)]
    rows[949] = ("u1", "plan-950", "2024-01-01")  # row 950 repeats row 1's key
    rows[599] = (" u3 ", "plan-600", "2024-01-01")  # collides with row 3 only once trimmed
    walkme.fail_next("/user/data$", 1, 503, headers={"Retry-After": "0"})  # the first batch is retried late
    result = import_file(moto_server, bucket, walkme, users_csv(rows))
    assert (result.result, result.rows_read, result.rows_written) == ("Succeeded", 1000, 998), result
    assert result.duplicate_keys == 2
    assert [(d.row, d.replaced_by) for d in result.duplicates] == [(2, 951), (4, 601)], "lines"
    users = walkme.users(WALKME_TOKEN)
    assert users["u1"]["plan"] == "plan-950" and users["u3"]["plan"] == "plan-600"
    assert walkme.objects_received == 998, "each key sent once: nothing to overtake"


@pytest.mark.parametrize(("header", "says"), [
    ("id,plan,id,since", "column 'id' appears twice in the CSV header (columns 1 and 3)"),
    ("id,plan,since,plan", "column 'plan' appears twice"),
    ("id,plan, plan ,since", "column 'plan' appears twice"),
    ("id,,plan,since", "column 2 of the CSV header has no name"),
    ("id,plan,since,", "column 4 of the CSV header has no name"),
])
def test_duplicated_or_empty_header_names_fail_naming_the_column(
        moto_server: str, bucket: str, walkme: FakeWalkMe, header: str, says: str) -> None:
    body = (header + "\n" + ",".join(f"v{i}" for i in range(header.count(",") + 1)) + "\n").encode()
    result = import_file(moto_server, bucket, walkme, body)
    assert (result.result, result.reason) == ("Failed", "BadHeader"), result
    assert says in result.message
    assert walkme.requests["/public/v1/user/data"] == 0


def test_the_file_is_read_once(s3_proxy: FaultProxy, moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="users.csv", Body=users_csv(rows_with_bad_since(300, set())))
    result = run_sync(request(s3_proxy.url, bucket, walkme), CREDENTIALS)
    assert result.rows_written == 300
    assert [s for s in s3_proxy.seen if s[0] == "GET" and s[1].endswith("/users.csv")] == \
        [next(s for s in s3_proxy.seen if s[0] == "GET")], "one GET of the object"


def soql_run(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> SyncResult:
    """An inbound run of Contacts' WalkMe_Id__c and Email by a SOQL query against the fake org."""
    sync = request("", "", walkme, source={"salesforce": {"soql": "SELECT WalkMe_Id__c, Email FROM Contact"}},
                   connection={"salesforce": {"instanceUrl": salesforce.url, "auth": {"secretRef": {"name": "s"}}}},
                   mapping={"key": {"source": "WalkMe_Id__c", "destination": "uuid"},
                            "fields": [{"source": "Email", "destination": "email"}]})
    credentials = CredentialSet({**CREDENTIALS.roles,
                                 "external": {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET}})
    return run_sync(sync, credentials)


def test_a_soql_source_is_queried_once(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    salesforce.seed("Contact", [{"LastName": f"n{i}", "WalkMe_Id__c": f"c{i}", "Email": f"c{i}@acme.example"}
                                for i in range(300)])
    result = soql_run(salesforce, walkme)
    assert (result.result, result.rows_written) == ("Succeeded", 300), result
    assert salesforce.calls["query"] == 1


TEXT = {"latin": ["Zoë", "Müller", "Ångström"], "cyrillic": ["Жанна", "Пётр"], "japanese": ["日本", "東京"],
        "any": ["Zoë", "Жанна", "日本", "emoji 🎉"]}


@pytest.mark.parametrize(("encoding", "alphabet"), [
    ("utf-8", "any"), ("utf-8-sig", "any"), ("utf-16", "any"), ("utf-16-le", "any"), ("utf-16-be", "any"),
    ("utf-32", "any"), ("latin-1", "latin"), ("cp1252", "latin"), ("iso-8859-15", "latin"), ("koi8-r", "cyrillic"),
    ("cp1251", "cyrillic"), ("shift_jis", "japanese"), ("euc-jp", "japanese"),
])
def test_declared_encodings_are_read(moto_server: str, bucket: str, walkme: FakeWalkMe, encoding: str,
                                     alphabet: str) -> None:
    names = TEXT[alphabet]
    text = "id,plan,since\n" + "".join(f"u{i},{name},2024-01-01\n" for i, name in enumerate(names))
    result = import_file(moto_server, bucket, walkme, text.encode(encoding), file={"encoding": encoding})
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", len(names), 0), result
    assert {u: a["plan"] for u, a in walkme.users(WALKME_TOKEN).items()} == {f"u{i}": n for i, n in enumerate(names)}


@pytest.mark.parametrize(("written", "declared"), [("utf-16", "utf-8"), ("utf-8", "utf-16"), ("cp1252", "utf-8")])
def test_a_wrong_declared_encoding_fails_naming_it(moto_server: str, bucket: str, walkme: FakeWalkMe, written: str,
                                                   declared: str) -> None:
    body = "id,plan,since\nu1,Zoë \u2019quoted\u2019,2024-01-01\n".encode(written)
    result = import_file(moto_server, bucket, walkme, body, file={"encoding": declared})
    assert (result.result, result.reason) == ("Failed", "BadEncoding"), result
    assert f"not valid {declared}" in result.message and "source.file.encoding" in result.message
    assert walkme.users(WALKME_TOKEN) == {}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-8"])
def test_a_byte_order_mark_is_not_part_of_the_first_column(moto_server: str, bucket: str, walkme: FakeWalkMe,
                                                           encoding: str) -> None:
    """Issue 21: `utf-16-le` with a BOM failed with MissingColumn "found: \\ufeffid"."""
    body = ("\ufeff" + "id,plan,since\nu1,Zoë,2024-01-01\n").encode(encoding)
    result = import_file(moto_server, bucket, walkme, body, file={"encoding": encoding})
    assert (result.result, result.rows_written) == ("Succeeded", 1), result
    assert walkme.users(WALKME_TOKEN) == {"u1": {"plan": "Zoë", "since": "2024-01-01"}}


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_every_line_of_the_file_is_accounted_for(moto_server: str, bucket: str, walkme: FakeWalkMe,
                                                 ending: str) -> None:
    """linesRead = header + blankLines + continuationLines + rowsRead, and rowsRead = written + rejected +
    duplicates: here 1 + 3 + 2 + 6 lines, 6 rows = 3 written + 2 rejected + 1 left out."""
    lines = ["id,plan,since", "u1,gold,2024-01-01", "", 'u2,"two\nline\nplan",2024-01-01', "", "u3,short",
             "", "u1,silver,2024-01-01", ",gold,2024-01-01", "u4,gold,2024-01-01"]
    body = ("\n".join(lines) + ending).encode()
    result = import_file(moto_server, bucket, walkme, body)
    assert (result.result, result.lines_read, result.blank_lines, result.continuation_lines) == \
        ("Succeeded", 12, 3, 2), result
    assert (result.rows_read, result.rows_written, result.rows_rejected, result.duplicate_keys) == (6, 3, 2, 1)
    assert [r.row for r in result.rejected] == [8, 11] and [d.row for d in result.duplicates] == [2]


def test_a_query_has_no_lines(salesforce: FakeSalesforce, walkme: FakeWalkMe) -> None:
    salesforce.seed("Contact", [{"LastName": "n", "WalkMe_Id__c": "c1", "Email": "c1@acme.example"}])
    result = soql_run(salesforce, walkme)
    assert (result.result, result.rows_read, result.lines_read, result.blank_lines) == ("Succeeded", 1, None, None)


def test_a_bad_byte_fails_the_run_naming_its_line_and_file_offset(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    """Issue 21: declared utf-8, one bad byte in row 500 failed with "byte 596 of a read block"."""
    rows = [(f"u{row}", "Zoë", "2024-01-01") for row in range(1, 1001)]
    body = users_csv(rows)
    offset = body.index(b"u500,") + len("u500,")
    result = import_file(moto_server, bucket, walkme, body[:offset] + b"\xe9" + body[offset:])
    assert (result.result, result.reason) == ("Failed", "BadEncoding"), result
    assert result.message.startswith(f"line 501 (byte {offset} of the file, counted from 0) is not valid utf-8: "
                                     "invalid continuation byte (0xe9); nothing was imported"), result.message
    assert walkme.users(WALKME_TOKEN) == {}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "cp1252"])
def test_outbound_file_in_a_declared_encoding_has_one_byte_order_mark_at_most(
        moto_server: str, bucket: str, walkme: FakeWalkMe, encoding: str) -> None:
    """The other way: a codec with a byte-order mark writes it once, not once per flushed chunk."""
    walkme.seed("users", [{"userId": f"u{i}", "email": f"Zoë{i}@acme.example", "updatedAt": "2026-11-20T10:00:00Z"}
                          for i in range(40_000)])  # several 1 MiB chunks
    sync = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "out"}, "runId": "run-enc",
        "spec": {"direction": "Outbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "w"},
                 "source": {"walkme": {"dataset": "users"}},
                 "destination": {"file": {"path": "out.csv", "encoding": encoding, "compression": "none"}},
                 "mapping": {"key": {"source": "userId", "destination": "user_id"},
                             "fields": [{"source": "email", "destination": "email"}]}},
        "connection": {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })
    result = run_sync(sync, CREDENTIALS)
    assert (result.result, result.rows_written) == ("Succeeded", 40_000), result
    body = s3_client(moto_server).get_object(Bucket=bucket, Key="out.csv")["Body"].read()
    text = body.decode(encoding)
    assert "\ufeff" not in text, "no byte-order mark inside the text"
    lines = text.splitlines()
    assert lines[0] == "user_id,email" and lines[1] == "u0,Zoë0@acme.example" and len(lines) == 40_001
