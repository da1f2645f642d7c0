"""The whole loop: manifests → operator → Job → real `walkme-dic sync` → data in moto / the fake WalkMe."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.azurite import Azurite
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import API, NS, OperatorHandle, condition, connection, integration, secret
from tests.operator.test_operator import apply_connections, events_once_emitted, finished_runs, jobs
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

REQUESTED_AT = "integrations.walkme.io/requested-at"


def put(moto: str, bucket: str, key: str, body: bytes) -> None:
    s3_client(moto).put_object(Bucket=bucket, Key=f"dic/{key}", Body=body)


def inbound(name: str = "hr", **overrides: Any) -> dict[str, Any]:
    return integration(name, mapping={"key": {"source": "id", "destination": "uuid"},
                                      "fields": [{"source": "plan", "destination": "plan"},
                                                 {"source": "since", "destination": "since", "type": "date"}],
                                      "activeField": "active"}, **overrides)


async def first_inbound_run(cluster: Cluster, backends: dict, moto: str, body: bytes,
                            **spec: Any) -> dict[str, Any]:
    """users.csv holding ``body``, the Connections and the inbound Integration applied: the Integration once
    its first run finished."""
    put(moto, backends["bucket"], "users.csv", body)
    await apply_connections(cluster, backends)
    await cluster.apply(inbound(**spec))
    return await finished_runs(cluster, "hr")


async def request_run(cluster: Cluster, name: str, value: str) -> None:
    await cluster.patch(API, "Integration", NS, name, {"metadata": {"annotations": {REQUESTED_AT: value}}})


async def test_s3_csv_to_walkme_never_deletes_and_active_flips(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    put(moto_server, backends["bucket"], "users.csv",
        b"id,plan,since,active\nu1,gold,2024-01-01,true\nu2,silver,2024-02-01,true\nu3,gold,2024-03-01,true\n"
        b"u4,gold,yesterday,true\n")
    await apply_connections(cluster, backends)
    await cluster.apply(inbound())
    obj = await finished_runs(cluster, "hr")
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsRead"], run["rowsWritten"], run["rowsRejected"]) == ("Succeeded", 4, 3, 1)
    assert "line 5: column 'since'" in run["message"]
    assert set(walkme.users(WALKME_TOKEN)) == {"u1", "u2", "u3"}

    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n"
                                                      b"u2,silver,2024-02-01,false\n")
    await request_run(cluster, "hr", "second")
    obj = await finished_runs(cluster, "hr", count=2)
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"], run["unchanged"]) == ("Succeeded", 1, 1), "only u2 changed"
    users = walkme.users(WALKME_TOKEN)
    assert set(users) == {"u1", "u2", "u3"}, "inbound never deletes"
    assert users["u2"]["active"] == "false" and users["u3"]["active"] == "true"
    assert obj["status"]["sourceFingerprint"]


async def test_unchanged_file_is_skipped_on_schedule_but_not_on_request(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(cluster, backends)
    await cluster.apply(inbound(schedule="0 * * * *"))
    await finished_runs(cluster, "hr")
    await cluster.client.patch(await cluster.resource(API, "Integration"), NS, "hr",
                               {"status": {"lastScheduleTime": "2020-01-01T00:00:00Z"}}, status=True)
    obj = await finished_runs(cluster, "hr", count=2)
    assert obj["status"]["runs"][0]["result"] == "Skipped"
    assert condition(obj, "Synced")["reason"] == "SourceUnchanged"
    assert "RunSkipped" in [e["reason"] for e in await events_once_emitted(cluster, "hr", "RunSkipped")]


async def test_too_many_rejected_rows_fail_and_write_nothing(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    obj = await first_inbound_run(
        cluster, backends, moto_server,
        b"id,plan,since,active\nu1,gold,bad,true\nu2,gold,2024-01-01,maybe\nu3,gold,2024-01-01,true\n",
        maxRejectedRows=1, job={"backoffLimit": 0})
    synced = condition(obj, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "TooManyRejectedRows")
    assert "nothing was written" in synced["message"]
    assert walkme.users(WALKME_TOKEN) == {}


async def test_duplicate_keys_warn_and_the_last_row_wins(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    obj = await first_inbound_run(
        cluster, backends, moto_server,
        b"id,plan,since,active\nu1,gold,2024-01-01,true\nu2,gold,2024-01-01,true\n u1 ,silver,2024-02-01,false\n")
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsRead"], run["rowsWritten"], run["duplicateKeys"], run["duplicateRows"]) == \
        ("Succeeded", 3, 2, 1, [2])
    events = await events_once_emitted(cluster, "hr", "DuplicateKeys")
    warning = next(e for e in events if e["reason"] == "DuplicateKeys")
    assert warning["type"] == "Warning" and "line 2 (replaced by line 4)" in warning["message"]
    assert walkme.users(WALKME_TOKEN)["u1"] == {"plan": "silver", "since": "2024-02-01", "active": "false"}


async def test_rows_walkme_refuses_fail_the_run_saying_what_was_applied(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    walkme.define_properties({"plan": "Date"})  # another integration made `plan` a Date property
    body = (b"id,plan,since,active\nu1,2024-05-01,2024-01-01,true\nu2,gold,2024-01-01,true\n"
            b"u3,2024-06-01,2024-01-01,true\n")
    obj = await first_inbound_run(cluster, backends, moto_server, body, maxRejectedRows=0, job={"backoffLimit": 0})
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"], run["rowsRejected"]) == ("Failed", 2, 1)
    synced = condition(obj, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "PartiallyApplied")
    assert "2 rows were applied" in synced["message"] and "(first: line 3: WalkMe refused it" in synced["message"]
    assert set(walkme.users(WALKME_TOKEN)) == {"u1", "u3"}


async def test_empty_source_warns_and_can_fail(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    obj = await first_inbound_run(cluster, backends, moto_server, b"id,plan,since,active\n")
    assert (condition(obj, "Synced")["status"], condition(obj, "Synced")["reason"]) == ("True", "EmptySource")
    assert "EmptySource" in [e["reason"] for e in await events_once_emitted(cluster, "hr", "EmptySource")]
    await cluster.apply(inbound(failOnEmptySource=True, job={"backoffLimit": 0}))
    obj = await finished_runs(cluster, "hr", count=2)
    assert (condition(obj, "Synced")["status"], condition(obj, "Synced")["reason"]) == ("False", "EmptySource")


async def test_wrong_integration_token_fails_clearly_without_leaking_it(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
    node: NodeAgent,
) -> None:
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(cluster, backends)
    wrong = "wrong-token-value-5521"
    await cluster.apply(secret("walkme-token", {"token": wrong}))
    await cluster.apply(inbound(job={"backoffLimit": 0}))
    obj = await finished_runs(cluster, "hr")
    synced = condition(obj, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthenticationFailed")
    assert "integration token" in synced["message"]
    assert walkme.users() == {}
    logs = "".join(node.logs(pod) for _, pod in node.pods)
    everything = str(obj) + str(await events_once_emitted(cluster, "hr", "RunFailed")) + logs
    assert wrong not in everything


def exported_rows(moto: str, bucket: str) -> dict[str, list[dict[str, str]]]:
    client = s3_client(moto)
    out = {}
    for item in client.list_objects_v2(Bucket=bucket, Prefix="dic/exports/").get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
        out[item["Key"]] = list(csv.DictReader(io.StringIO(body)))
    return out


async def test_walkme_to_s3_export_is_incremental(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    walkme.seed("users", [{"userId": f"u{i}", "email": f"u{i}@acme.example",
                           "updatedAt": f"2026-11-0{i + 1}T00:00:00Z"} for i in range(3)])
    await apply_connections(cluster, backends)
    await cluster.apply(integration(
        "export", direction="Outbound",
        source={"walkme": {"dataset": "users", "since": "lastRun", "incrementalLookbackSeconds": 0}},
        destination={"file": {"path": "exports/users-{runId}.csv"}},
        mapping={"key": {"source": "userId", "destination": "user_id"},
                 "fields": [{"source": "email", "destination": "email"}]}))
    obj = await finished_runs(cluster, "export")
    first_mark = obj["status"]["watermark"]  # the run's start (lookback 0): after every record it read
    assert first_mark > "2026-11-03T00:00:00Z"
    first = exported_rows(moto_server, backends["bucket"])
    assert [r["user_id"] for rows in first.values() for r in rows] == ["u0", "u1", "u2"]

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # after the first run's window
    walkme.seed("users", [{"userId": "u9", "email": "u9@acme.example", "updatedAt": stamp}])
    await request_run(cluster, "export", "incremental")
    obj = await finished_runs(cluster, "export", count=2)
    files = exported_rows(moto_server, backends["bucket"])
    new = [rows for key, rows in files.items() if key not in first]
    assert new == [[{"user_id": "u9", "email": "u9@acme.example"}]]
    assert obj["status"]["watermark"] > stamp >= first_mark
    assert len(await jobs(cluster)) == 2
    assert s3_client(moto_server).list_multipart_uploads(Bucket=backends["bucket"]).get("Uploads", []) == []


async def test_failed_export_leaves_no_file_and_keeps_the_watermark(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    walkme.seed("users", [{"userId": "u1", "updatedAt": "2026-11-01T00:00:00Z"}])
    walkme.fail_next("/insights/export/users", 1000, 503)
    await apply_connections(cluster, backends)
    await cluster.apply(integration(
        "export", direction="Outbound", source={"walkme": {"dataset": "users"}},
        destination={"file": {"path": "exports/users.csv"}},
        mapping={"key": {"source": "userId", "destination": "user_id"}}, job={"backoffLimit": 0}))
    obj = await finished_runs(cluster, "export")
    assert condition(obj, "Synced")["reason"] == "TransientError"
    assert "watermark" not in obj["status"]
    assert exported_rows(moto_server, backends["bucket"]) == {}


async def test_demo_command_runs_to_the_end(tmp_path: Path) -> None:
    """scripts/demo.sh's module: its own control plane, the chart helm-installed, the examples synced."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "walkme_dic_dev.demo", "--timeout", "90",
                                                   "--kubeconfig", str(tmp_path / "kubeconfig"),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    text = output.decode()
    assert process.returncode == 0, text
    assert "demo finished" in text and "WalkMe user attributes: 4 users imported" in text
    assert "E-1004: {'department': 'Support'" in text and "'active': 'false'" in text
    assert "line 6: column 'start_date'" in text


def salesforce_connection(salesforce: FakeSalesforce) -> list[dict[str, Any]]:
    return [secret("sf-app", {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET}),
            connection("crm", {"salesforce": {"instanceUrl": salesforce.url,
                                              "auth": {"secretRef": {"name": "sf-app"}}}})]


async def test_salesforce_soql_to_walkme(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, salesforce: FakeSalesforce,
) -> None:
    salesforce.seed("Contact", [{"LastName": "Ng", "WalkMe_Id__c": "c1", "Email": "ng@acme.example", "Active__c": True},
                                {"LastName": "Ito", "WalkMe_Id__c": "c2", "Email": "ito@acme.example",
                                 "Active__c": False}])
    await apply_connections(cluster, backends)
    for obj in salesforce_connection(salesforce):
        await cluster.apply(obj)
    await cluster.apply(integration(
        "contacts", connectionRef={"name": "crm"},
        source={"salesforce": {"soql": "SELECT WalkMe_Id__c, Email, Active__c FROM Contact"}},
        mapping={"key": {"source": "WalkMe_Id__c", "destination": "uuid"},
                 "fields": [{"source": "Email", "destination": "email"}], "activeField": "Active__c"}))
    obj = await finished_runs(cluster, "contacts")
    assert obj["status"]["runs"][0]["rowsWritten"] == 2, obj["status"]["runs"][0]
    users = walkme.users(WALKME_TOKEN)
    assert users == {"c1": {"email": "ng@acme.example", "Active__c": "true"},
                     "c2": {"email": "ito@acme.example", "Active__c": "false"}}  # WalkMe has no Boolean (A4)


async def test_walkme_to_salesforce_upsert_is_idempotent(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, salesforce: FakeSalesforce,
) -> None:
    walkme.seed("users", [{"userId": f"u{i}", "email": f"u{i}@acme.example", "lastSeen": "2026-11-20T08:00:00Z",
                           "updatedAt": "2026-11-20T08:00:00Z"} for i in range(3)])
    await apply_connections(cluster, backends)
    for obj in salesforce_connection(salesforce):
        await cluster.apply(obj)
    await cluster.apply(integration(
        "usage", direction="Outbound", connectionRef={"name": "crm"},
        source={"walkme": {"dataset": "users", "since": "2026-01-01T00:00:00Z"}},
        destination={"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "WalkMe_Id__c"}},
        mapping={"key": {"source": "userId", "destination": "WalkMe_Id__c"},
                 "fields": [{"source": "email", "destination": "LastName"},
                            {"source": "lastSeen", "destination": "Last_Seen__c", "type": "date"}]}))
    await finished_runs(cluster, "usage")
    await request_run(cluster, "usage", "again")
    obj = await finished_runs(cluster, "usage", count=2)
    assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded", "Succeeded"]
    contacts = salesforce.records("Contact")
    assert sorted(c["WalkMe_Id__c"] for c in contacts) == ["u0", "u1", "u2"], "a re-run upserts, never duplicates"
    assert {c["Last_Seen__c"] for c in contacts} == {"2026-11-20"}


async def azure_connection(cluster: Cluster, azurite: Azurite) -> str:
    container = f"c{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    await cluster.apply(secret("azure", {"connectionString": azurite.connection_string}))
    await cluster.apply(connection("blob", {"azureBlob": {
        "accountUrl": azurite.account_url, "container": container, "prefix": "dic/",
        "auth": {"secretRef": {"name": "azure", "key": "connectionString"}}}}))
    return container


async def test_azure_jsonl_gz_to_walkme(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, azurite: Azurite,
) -> None:
    await apply_connections(cluster, backends)
    container = await azure_connection(cluster, azurite)
    lines = b'{"email": "a@acme.example", "segment": "smb", "customer": "true"}\n' \
            b'{"email": "b@acme.example", "segment": "ent", "customer": false}\nnot json\n'
    BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container) \
        .upload_blob("dic/crm/segments.jsonl.gz", gzip.compress(lines))
    await cluster.apply(integration(
        "segments", connectionRef={"name": "blob"},
        source={"file": {"path": "crm/segments.jsonl.gz", "format": "jsonl"}},
        mapping={"key": {"source": "email", "destination": "uuid"},
                 "fields": [{"source": "segment", "destination": "segment"},
                            {"source": "customer", "destination": "isCustomer"}]}))  # text: WalkMe has no Boolean
    obj = await finished_runs(cluster, "segments")
    run = obj["status"]["runs"][0]
    assert (run["rowsRead"], run["rowsWritten"], run["rowsRejected"]) == (3, 2, 1)
    assert "line 3: not valid JSON" in run["message"]
    assert walkme.users(WALKME_TOKEN) == {"a@acme.example": {"segment": "smb", "isCustomer": "true"},
                                          "b@acme.example": {"segment": "ent", "isCustomer": "false"}}


async def test_walkme_events_to_azure_blob(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, azurite: Azurite,
) -> None:
    walkme.seed("events", [{"eventId": f"e{i}", "userId": "u1", "type": "LauncherClicked",
                            "timestamp": f"2026-11-2{i}T10:00:00Z"} for i in range(4)])
    await apply_connections(cluster, backends)
    container = await azure_connection(cluster, azurite)
    await cluster.apply(integration(
        "events", direction="Outbound", connectionRef={"name": "blob"},
        source={"walkme": {"dataset": "events"}},
        destination={"file": {"path": "events/{runId}.jsonl", "format": "jsonl"}},
        mapping={"key": {"source": "eventId", "destination": "event_id"},
                 "fields": [{"source": "type", "destination": "type"}]}))
    obj = await finished_runs(cluster, "events")
    run = obj["status"]["runs"][0]
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    names = [b.name for b in client.list_blobs()]
    assert names == [f"dic/events/{run['name']}.jsonl"]
    rows = [json.loads(line) for line in client.download_blob(names[0]).readall().splitlines()]
    assert rows == [{"event_id": f"e{i}", "type": "LauncherClicked"} for i in range(4)]
