"""What an inbound run sends WalkMe, through the real engine: only the types WalkMe documents.

WalkMe documents three attribute types, String, Number and Date (YYYY-MM-DD), declared by the admin when
the integration's properties are set up in the console. walkme-dic sends every value as one of them:
``active`` as the String "true" or "false", never a JSON boolean.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.connectors.test_walkme import client, upsert
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

FILE = b"id,plan,seats,since,active\nu1,gold,3,2024-01-01,true\nu2,silver,12,2024-02-29,FALSE\nu3,gold,1,2024-03-01,0\n"
FIELDS = [{"source": "plan", "destination": "plan"}, {"source": "seats", "destination": "seats", "type": "number"},
          {"source": "since", "destination": "since", "type": "date"}]


def inbound(walkme: FakeWalkMe, moto: str, bucket: str, path: str, **mapping: Any) -> SyncResult:
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "types"}, "runId": f"run-{uuid.uuid4().hex[:6]}", "force": True,
        "spec": {"direction": "Inbound", "connectionRef": {"name": "s3"}, "walkmeConnectionRef": {"name": "walkme"},
                 "source": {"file": {"path": path}},
                 "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                            "userIdProperty": "uuid"}},
                 "mapping": {"key": {"source": "id", "destination": "uuid"}, **mapping}},
        "connection": {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })
    credentials = CredentialSet({"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    return run_sync(request, credentials)


def test_every_attribute_is_a_string_number_or_date_and_active_is_the_text_true_or_false(
    walkme: FakeWalkMe, moto_server: str, bucket: str,
) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="users.csv", Body=FILE)
    result = inbound(walkme, moto_server, bucket, "users.csv", fields=FIELDS, activeField="active")
    assert (result.result, result.rows_written) == ("Succeeded", 3), result
    users = walkme.users(WALKME_TOKEN)
    assert users == {"u1": {"plan": "gold", "seats": 3, "since": "2024-01-01", "active": "true"},
                     "u2": {"plan": "silver", "seats": 12, "since": "2024-02-29", "active": "false"},
                     "u3": {"plan": "gold", "seats": 1, "since": "2024-03-01", "active": "false"}}
    assert walkme.property_types == {"plan": "String", "seats": "Number", "since": "Date", "active": "String"}
    assert all(type(value) in (str, int) for attributes in users.values() for value in attributes.values())


def test_a_json_boolean_is_refused_by_the_fake_as_walkme_documents_no_boolean_type(walkme: FakeWalkMe) -> None:
    """Assumption A4 (docs/walkme-api.md): WalkMe has no Boolean property; the fake refuses a JSON boolean."""
    report = upsert(client(walkme), WALKME_TOKEN, [{"uuid": "a", "active": True}, {"uuid": "b", "active": "true"}])
    assert report.written == 1 and len(report.failed) == 1
    assert "must be a String, Number or Date" in report.failed[0][1]


CONSOLE = {"plan": "String", "seats": "Number", "since": "Date", "active": "String"}  # as the admin set them up


def test_declared_properties_are_stored_and_an_undeclared_one_is_ignored(
    walkme: FakeWalkMe, moto_server: str, bucket: str,
) -> None:
    """Assumption A11 (docs/walkme-api.md): the console's properties are an allow-list; WalkMe acknowledges a
    payload with another property and drops that property, so a mapping the console lacks succeeds unseen."""
    walkme.declare(WALKME_TOKEN, CONSOLE)
    s3_client(moto_server).put_object(Bucket=bucket, Key="users.csv", Body=FILE)
    fields = [*FIELDS, {"source": "plan", "destination": "tier"}]  # tier: not set up in the console
    result = inbound(walkme, moto_server, bucket, "users.csv", fields=fields, activeField="active")
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", 3, 0), result
    assert walkme.users(WALKME_TOKEN)["u1"] == {"plan": "gold", "seats": 3, "since": "2024-01-01", "active": "true"}
    assert walkme.ignored == {"tier": 3}
    assert walkme.property_types == {}, "a declared integration learns no types from values"


def test_a_value_of_another_type_than_the_console_declares_is_refused_with_its_line(
    walkme: FakeWalkMe, moto_server: str, bucket: str,
) -> None:
    """Assumption A3 (docs/walkme-api.md): a value not of its declared type refuses its object, named by WalkMe's
    answer; the run rejects that line and applies the others."""
    walkme.declare(WALKME_TOKEN, {**CONSOLE, "seats": "Date"})  # the admin made seats a Date by mistake
    s3_client(moto_server).put_object(Bucket=bucket, Key="users.csv", Body=FILE)
    result = inbound(walkme, moto_server, bucket, "users.csv", fields=FIELDS, activeField="active")
    assert (result.result, result.reason, result.rows_written) == ("Failed", "NothingApplied", 0), result
    assert [r.row for r in result.rejected] == [2, 3, 4]
    assert result.rejected[0].reason == \
        "line 2: WalkMe refused it: attribute 'seats' is a Date property; 3 is not a Date"
    walkme.declare(WALKME_TOKEN, CONSOLE)
    fixed = inbound(walkme, moto_server, bucket, "users.csv", fields=FIELDS, activeField="active")
    assert (fixed.result, fixed.rows_written) == ("Succeeded", 3), fixed
