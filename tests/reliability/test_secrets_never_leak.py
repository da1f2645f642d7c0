"""Plant a unique marker in every secret and grep everything the system says: none may contain it."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from tests.e2e.test_flows import inbound, put
from tests.fakes.google_token import FakeGoogleToken
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.gcs import service_account_key
from tests.fixtures.pki import Pki
from tests.fixtures.sshd import Sshd
from tests.fixtures.webhook import WEBHOOK_SECRET
from tests.operator.helpers import API, NS, OperatorHandle, condition, connection, eventually, integration, secret
from tests.operator.test_operator import finished_runs, ready
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent


async def test_no_secret_value_in_status_events_logs_or_results(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, walkme: FakeWalkMe, moto_server: str,
    bucket: str, caplog: pytest.LogCaptureFixture,
) -> None:
    marker = f"SECRET-{uuid.uuid4().hex}"
    client_secret, aws_secret, token = f"{marker}-client", f"{marker}-aws", f"{marker}-token"
    client_id = "leak-test"  # its own API key: rotating the shared one would break later tests
    walkme.clients[client_id] = client_secret
    walkme.integration_tokens[token] = "uuid"
    caplog.set_level(logging.DEBUG)
    for obj in (
        secret("walkme-api", {"clientId": client_id, "clientSecret": client_secret}),
        secret("aws", {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": aws_secret}),
        secret("walkme-token", {"token": token}),
        connection("walkme", {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                         "auth": {"secretRef": {"name": "walkme-api"}}}}),
        connection("lake", {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server,
                                   "prefix": "dic/", "auth": {"secretRef": {"name": "aws"}}}}),
    ):
        await cluster.apply(obj)
    await ready(cluster, "Connection", "walkme")
    await ready(cluster, "Connection", "lake")
    put(moto_server, bucket, "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\nu2,x,bad,true\n")
    await cluster.apply(inbound("good"))
    await finished_runs(cluster, "good")
    # A failing run: WalkMe refuses the integration token mid-run.
    del walkme.integration_tokens[token]
    await cluster.apply(inbound("bad", job={"backoffLimit": 0}))
    failed = await finished_runs(cluster, "bad")
    assert failed["status"]["runs"][0]["result"] == "Failed"
    # A failing probe: a rotated client secret.
    walkme.clients[client_id] = "rotated"
    await cluster.patch(API, "Connection", NS, "walkme", {"spec": {"probeInterval": "1m"}})

    async def probe_failed() -> bool:
        return condition(await cluster.get(API, "Connection", NS, "walkme"), "Ready").get("reason") == \
            "AuthenticationFailed"

    await eventually(probe_failed)
    said = [
        str(await cluster.list(API, "Connection", NS)), str(await cluster.list(API, "Integration", NS)),
        str(await cluster.list("v1", "Event", NS)), str(await cluster.list("v1", "Pod", NS)),
        "".join(node.logs(pod) for _, pod in node.pods), caplog.text,
    ]
    assert len(said[-2]) > 0 and "rowsRead" in said[-2], "the sync's progress output was captured"
    for text in said:
        assert marker not in text


async def test_no_gcs_key_or_webhook_secret_in_status_events_logs_or_results(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, walkme: FakeWalkMe, gcs_emulator: str,
    gcs_bucket: str, google_token: FakeGoogleToken, webhook_receiver: WebhookReceiver, webhook_pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = f"SECRET-{uuid.uuid4().hex}"
    key = service_account_key(google_token)
    private_key = json.loads(key)["private_key"]
    signing, client_secret = f"{marker}-whsec", f"{marker}-client"
    walkme.clients["leak-test-gcs-webhook"] = client_secret  # its own API key: the test above rotates the shared one
    webhook_receiver.secret = signing
    caplog.set_level(logging.DEBUG)
    try:
        for obj in (
            secret("walkme-api", {"clientId": "leak-test-gcs-webhook", "clientSecret": client_secret}),
            secret("gcp", {"key.json": key}),
            secret("hook", {"signingSecret": signing, "ca.crt": webhook_pki.ca_pem}),
            connection("walkme", {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                             "auth": {"secretRef": {"name": "walkme-api"}}}}),
            connection("gcs", {"gcs": {"bucket": gcs_bucket, "endpointUrl": gcs_emulator,
                                       "auth": {"secretRef": {"name": "gcp", "key": "key.json"}}}}),
            connection("hook", {"webhook": {"url": webhook_receiver.hook, "auth": {"secretRef": {"name": "hook"}}}}),
        ):
            await cluster.apply(obj)
        for name in ("walkme", "gcs", "hook"):
            await ready(cluster, "Connection", name)
        walkme.seed("users", [{"userId": "u1", "email": "u1@acme.example", "updatedAt": "2026-11-20T08:00:00Z"}])
        outbound = {"direction": "Outbound", "source": {"walkme": {"dataset": "users"}},
                    "mapping": {"key": {"source": "userId", "destination": "id"}}, "job": {"backoffLimit": 0}}
        await cluster.apply(integration("to-gcs", connectionRef={"name": "gcs"},
                                        destination={"file": {"path": "u.csv"}}, **outbound))
        assert (await finished_runs(cluster, "to-gcs"))["status"]["runs"][0]["result"] == "Succeeded"
        # A receiver that refuses the batch and echoes the signing secret in its answer.
        webhook_receiver.fail_next(1, 400, f'{{"error": "bad batch", "yourSecret": "{signing}"}}')
        await cluster.apply(integration("to-hook", connectionRef={"name": "hook"},
                                        destination={"webhook": {"batchSize": 10}}, **outbound))
        refused = (await finished_runs(cluster, "to-hook"))["status"]["runs"][0]
        assert refused["result"] == "Failed" and "bad batch" in refused["message"] and "***" in refused["message"]
        # A failing probe: the receiver now expects another secret, and says so with the one it got.
        webhook_receiver.secret = "rotated-on-the-receiver"
        webhook_receiver.fail_next(100, 401, f"signature made with {signing} does not match")
        await cluster.patch(API, "Connection", NS, "hook", {"spec": {"probeInterval": "1m"}})

        async def probe_failed() -> bool:
            return condition(await cluster.get(API, "Connection", NS, "hook"), "Ready").get("reason") == \
                "AuthenticationFailed"

        await eventually(probe_failed)
    finally:
        webhook_receiver.secret = WEBHOOK_SECRET
    said = [
        str(await cluster.list(API, "Connection", NS)), str(await cluster.list(API, "Integration", NS)),
        str(await cluster.list("v1", "Event", NS)), str(await cluster.list("v1", "Pod", NS)),
        "".join(node.logs(pod) for _, pod in node.pods), caplog.text,
    ]
    body = "".join(private_key.splitlines()[1:-1])
    for text in said:
        assert marker not in text
        assert not any(body[i:i + 32] in text.replace("\\n", "") for i in range(0, len(body) - 32, 32))


async def test_no_sftp_password_key_or_passphrase_anywhere(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, walkme: FakeWalkMe, sshd: Sshd,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A working key login, a refused password and a wrong passphrase: status, Events and logs hold none."""
    marker = f"SECRET-{uuid.uuid4().hex}"
    token, client_secret = f"{marker}-token", f"{marker}-client"
    walkme.integration_tokens[token] = "uuid"
    walkme.clients["leak-test-sftp"] = client_secret  # its own API key: another test rotates the shared one
    caplog.set_level(logging.DEBUG)
    folder = sshd.folder()
    (folder / "users.csv").write_bytes(b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    key = sshd.keys["rsa"]
    sftp = {"host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(folder)}
    for obj in (
        secret("walkme-api", {"clientId": "leak-test-sftp", "clientSecret": client_secret}),
        secret("walkme-token", {"token": token}),
        secret("sftp-key", {"privateKey": key, "knownHosts": sshd.known_hosts}),
        secret("sftp-password", {"password": f"{marker}-password", "knownHosts": sshd.known_hosts}),
        secret("sftp-passphrase", {"privateKey": sshd.keys["ed25519-passphrase"], "passphrase": f"{marker}-pass",
                                   "knownHosts": sshd.known_hosts}),
        connection("walkme", {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                         "auth": {"secretRef": {"name": "walkme-api"}}}}),
        connection("files", {"sftp": {**sftp, "auth": {"secretRef": {"name": "sftp-key"}}}}),
        connection("files-password", {"sftp": {**sftp, "auth": {"secretRef": {"name": "sftp-password"}}}}),
        connection("files-passphrase", {"sftp": {**sftp, "auth": {"secretRef": {"name": "sftp-passphrase"}}}}),
    ):
        await cluster.apply(obj)
    await ready(cluster, "Connection", "walkme")
    await ready(cluster, "Connection", "files")

    async def refused(name: str, reason: str) -> bool:
        return condition(await cluster.get(API, "Connection", NS, name), "Ready").get("reason") == reason

    await eventually(lambda: refused("files-password", "AuthenticationFailed"))
    await eventually(lambda: refused("files-passphrase", "ProbeFailed"))
    await cluster.apply(inbound("from-sftp", connectionRef={"name": "files"}))
    run = (await finished_runs(cluster, "from-sftp"))["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"]) == ("Succeeded", 1), run
    said = [
        str(await cluster.list(API, "Connection", NS)), str(await cluster.list(API, "Integration", NS)),
        str(await cluster.list("v1", "Event", NS)), str(await cluster.list("v1", "Pod", NS)),
        "".join(node.logs(pod) for _, pod in node.pods), caplog.text,
    ]
    key_lines = [line for line in key.splitlines() if len(line) > 40 and "PRIVATE KEY" not in line]
    assert key_lines
    for text in said:
        assert marker not in text
        assert not any(line in text for line in key_lines), "a line of the private key leaked"
