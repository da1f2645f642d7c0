"""GCS and webhook through the whole loop: manifests → operator → Job → real `walkme-dic sync`.

Covers what only the operator path shows: the Connection's TYPE (status.provider), the Secret
mounted into the Job (only the GCS key's item; the webhook Secret's signingSecret and ca.crt), and
the run's status.
"""

from __future__ import annotations

import csv
import io

from tests.fakes.google_token import FakeGoogleToken
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.gcs import gcs_client, service_account_key
from tests.fixtures.pki import Pki
from tests.fixtures.walkme import WALKME_TOKEN
from tests.fixtures.webhook import WEBHOOK_SECRET
from tests.operator.helpers import OperatorHandle, condition, connection, integration, secret
from tests.operator.test_operator import apply_connections, finished_runs, jobs, ready
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent


async def gcs_connection(cluster: Cluster, endpoint: str, bucket: str, token: FakeGoogleToken) -> dict:
    await cluster.apply(secret("gcp", {"key.json": service_account_key(token), "unrelated": "not mounted"}))
    await cluster.apply(connection("gcs", {"gcs": {"bucket": bucket, "prefix": "dic/", "endpointUrl": endpoint,
                                                   "auth": {"secretRef": {"name": "gcp", "key": "key.json"}}}}))
    return await ready(cluster, "Connection", "gcs")


async def test_gcs_file_to_walkme_and_walkme_to_gcs(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, walkme: FakeWalkMe,
    gcs_emulator: str, gcs_bucket: str, google_token: FakeGoogleToken,
) -> None:
    await apply_connections(cluster, backends)
    conn = await gcs_connection(cluster, gcs_emulator, gcs_bucket, google_token)
    assert conn["status"]["provider"] == "gcs", "kubectl get wmconn shows TYPE gcs"
    assert "read (Inbound) and write (Outbound)" in condition(conn, "Ready")["message"]
    bucket = gcs_client(gcs_emulator).bucket(gcs_bucket)
    bucket.blob("dic/users.csv").upload_from_string(b"id,plan,active\nu1,gold,true\nu2,silver,true\n")
    await cluster.apply(integration("from-gcs", connectionRef={"name": "gcs"},
                                    mapping={"key": {"source": "id", "destination": "uuid"},
                                             "fields": [{"source": "plan", "destination": "plan"}],
                                             "activeField": "active"}))
    run = (await finished_runs(cluster, "from-gcs"))["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"]) == ("Succeeded", 2), run
    assert set(walkme.users(WALKME_TOKEN)) == {"u1", "u2"}

    walkme.seed("users", [{"userId": "u7", "email": "u7@acme.example", "updatedAt": "2026-11-20T08:00:00Z"}])
    await cluster.apply(integration(
        "to-gcs", direction="Outbound", connectionRef={"name": "gcs"}, source={"walkme": {"dataset": "users"}},
        destination={"file": {"path": "exports/users-{runId}.csv"}},
        mapping={"key": {"source": "userId", "destination": "user_id"},
                 "fields": [{"source": "email", "destination": "email"}]}))
    run = (await finished_runs(cluster, "to-gcs"))["status"]["runs"][0]
    assert run["result"] == "Succeeded", run
    body = bucket.blob(f"dic/exports/users-{run['name']}.csv").download_as_bytes().decode()
    assert list(csv.DictReader(io.StringIO(body))) == [{"user_id": "u7", "email": "u7@acme.example"}]
    job = next(j for j in await jobs(cluster) if j["metadata"]["name"] == run["name"])
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["external"]["secret"]["items"] == [{"key": "key.json", "path": "key.json"}]


async def test_walkme_events_to_a_webhook(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, walkme: FakeWalkMe,
    webhook_receiver: WebhookReceiver, webhook_pki: Pki,
) -> None:
    walkme.seed("events", [{"eventId": f"e{i}", "type": "LauncherClicked", "timestamp": f"2026-11-2{i}T10:00:00Z"}
                           for i in range(5)])
    await apply_connections(cluster, backends)
    await cluster.apply(secret("hook", {"signingSecret": WEBHOOK_SECRET, "ca.crt": webhook_pki.ca_pem}))
    await cluster.apply(connection("hook", {"webhook": {"url": webhook_receiver.hook,
                                                        "auth": {"secretRef": {"name": "hook"}}}}))
    conn = await ready(cluster, "Connection", "hook")
    assert conn["status"]["provider"] == "webhook" and webhook_receiver.probes >= 1
    await cluster.apply(integration(
        "events", direction="Outbound", connectionRef={"name": "hook"}, source={"walkme": {"dataset": "events"}},
        destination={"webhook": {"batchSize": 2}},
        mapping={"key": {"source": "eventId", "destination": "event_id"},
                 "fields": [{"source": "type", "destination": "type"}]}))
    obj = await finished_runs(cluster, "events")
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"]) == ("Succeeded", 5), run
    assert list(webhook_receiver.batches) == [f"{run['name']}-{n}" for n in (1, 2, 3)]
    assert webhook_receiver.records() == [{"event_id": f"e{i}", "type": "LauncherClicked"} for i in range(5)]
    assert obj["status"]["watermark"] > "2026-11-24T10:00:00Z", "since: lastRun: the end of the run's window"
