"""No secret ever travels in a URL: proxies and access logs record request lines, not headers or bodies.

Real `walkme-dic sync` processes run every direction against the loopback fakes (WalkMe, Salesforce, the
webhook receiver, S3 behind a recording proxy), with a retried and a refused WalkMe call among them; then
every request line each server received (method, path and query as sent) is searched for every secret
value, raw and URL-encoded: the API key's secret, the integration token, the bearer tokens the fakes
issued, the Salesforce client secret, the AWS secret key and the webhook signing secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from azure.storage.blob import BlobServiceClient

from tests.fakes.faultproxy import FaultProxy, running_proxy
from tests.fakes.google_token import FakeGoogleToken
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.azurite import KEY, running_azurite
from tests.fixtures.gcs import gcs_client, service_account_key
from tests.fixtures.pki import Pki
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import KEY_PASSPHRASES, running_sshd
from tests.fixtures.webhook import WEBHOOK_SECRET
from walkme_dic.api.run import REQUEST_ENV

TO_WALKME = {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"}, "userIdProperty": "uuid"}}
FROM_WALKME = {"walkme": {"dataset": "users"}}


def encodings(value: str) -> set[str]:
    """A secret as it could appear in a URL: raw, percent-encoded (with and without '/'), form-encoded."""
    return {value, quote(value), quote(value, safe=""), quote_plus(value)}


def sync(tmp_path: Path, spec: dict[str, Any], connection: dict[str, Any], walkme_url: str,
         credentials: dict[str, dict[str, str]]) -> dict[str, Any]:
    """One `walkme-dic sync` process; its result."""
    run = f"run-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / run
    for role, keys in credentials.items():
        (folder / role).mkdir(parents=True)
        for key, value in keys.items():
            (folder / role / key).write_text(value)
    request = {"integration": {"namespace": "ns", "name": "urls"}, "runId": run, "force": True,
               "spec": {"connectionRef": {"name": "x"}, "walkmeConnectionRef": {"name": "walkme"}, **spec,
                        "job": {"backoffLimit": 0}},
               "connection": connection,
               "walkmeConnection": {"walkme": {"apiUrl": walkme_url, "insightsExportUrl": walkme_url,
                                               "auth": {"secretRef": {"name": "w"}}}}}
    result = folder / "result.json"
    subprocess.run([sys.executable, "-m", "walkme_dic", "sync", "--credentials", str(folder), "--result", str(result)],
                   env={**os.environ, REQUEST_ENV: json.dumps(request)}, capture_output=True, timeout=120, check=False)
    return json.loads(result.read_text())


def test_no_secret_in_any_request_line_of_any_direction(
    tmp_path: Path, walkme: FakeWalkMe, salesforce: FakeSalesforce, webhook_receiver: WebhookReceiver,
    webhook_pki: Pki, moto_server: str, bucket: str, s3_proxy: FaultProxy,
) -> None:
    marker = uuid.uuid4().hex
    client_secret, token = f"wm/{marker}+secret=", f"it {marker}/token+&="  # characters a URL encodes
    aws_secret = f"aws/{marker}+key"
    walkme.clients["url-test"] = client_secret
    walkme.integration_tokens[token] = "uuid"
    walkme.request_lines.clear()
    salesforce.request_lines.clear()
    s3_proxy.seen.clear()
    wm = {"walkme": {"clientId": "url-test", "clientSecret": client_secret}, "integration-token": {"token": token}}
    s3 = ({"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": s3_proxy.url,
                  "auth": {"secretRef": {"name": "aws"}}}},
          {"AWS_ACCESS_KEY_ID": "url-test", "AWS_SECRET_ACCESS_KEY": aws_secret})
    sf = ({"salesforce": {"instanceUrl": salesforce.url, "auth": {"secretRef": {"name": "sf"}}}},
          {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET})
    hook = ({"webhook": {"url": webhook_receiver.hook, "auth": {"secretRef": {"name": "hook"}}}},
            {"signingSecret": WEBHOOK_SECRET, "ca.crt": webhook_pki.ca_pem})
    s3_client(moto_server).put_object(Bucket=bucket, Key="people.csv", Body=b"id,email\np1,p1@acme.example\n")
    salesforce.seed("Contact", [{"LastName": "p2@acme.example", "WalkMe_Id__c": "p2"}])
    walkme.seed("users", [{"userId": "p3", "email": "p3@acme.example", "updatedAt": "2026-11-20T08:00:00Z"}])
    inbound = {"direction": "Inbound", "destination": TO_WALKME}
    outbound = {"direction": "Outbound", "source": FROM_WALKME,
                "mapping": {"key": {"source": "userId", "destination": "WalkMe_Id__c"},
                            "fields": [{"source": "email", "destination": "LastName"}]}}
    from_file = {**inbound, "source": {"file": {"path": "people.csv"}},
                 "mapping": {"key": {"source": "id", "destination": "uuid"},
                             "fields": [{"source": "email", "destination": "email"}]}}
    walkme.fail_next(r"/public/v1/user/data$", 1, 500)  # a retried upsert
    runs = [
        sync(tmp_path, from_file, s3[0], walkme.url, {**wm, "external": s3[1]}),
        sync(tmp_path, {**inbound, "source": {"salesforce": {"soql": "SELECT WalkMe_Id__c, LastName FROM Contact"}},
                        "mapping": {"key": {"source": "WalkMe_Id__c", "destination": "uuid"},
                                    "fields": [{"source": "LastName", "destination": "email"}]}},
             sf[0], walkme.url, {**wm, "external": sf[1]}),
        sync(tmp_path, {**outbound, "destination": {"file": {"path": "out/{runId}.csv"}}}, s3[0], walkme.url,
             {**wm, "external": s3[1]}),
        sync(tmp_path, {**outbound, "destination": {"salesforce": {"object": "Contact", "operation": "upsert",
                                                                   "externalIdField": "WalkMe_Id__c"}}},
             sf[0], walkme.url, {**wm, "external": sf[1]}),
        sync(tmp_path, {**outbound, "destination": {"webhook": {"batchSize": 10}}}, hook[0], walkme.url,
             {**wm, "external": hook[1]}),
    ]
    assert [run["result"] for run in runs] == ["Succeeded"] * 5, runs
    del walkme.integration_tokens[token]  # a refused integration token: the failing path sends the same calls
    refused = sync(tmp_path, from_file, s3[0], walkme.url, {**wm, "external": s3[1]})
    assert refused["reason"] == "AuthenticationFailed", refused
    assert set(walkme.users()) >= {"p1", "p2"}

    lines = {
        "WalkMe": walkme.request_lines, "Salesforce": salesforce.request_lines,
        "webhook": webhook_receiver.request_lines,
        "S3": [f"{method} {path}?{query}" for method, path, query in s3_proxy.seen],
    }
    assert all(lines.values()), {name: len(seen) for name, seen in lines.items()}
    assert any("/public/v1/user/data" in line for line in walkme.request_lines)
    assert not any("/user/data/ids" in line for line in walkme.request_lines), "an endpoint WalkMe does not have"
    secrets = [client_secret, token, aws_secret, SF_CLIENT_SECRET, WEBHOOK_SECRET,
               *walkme.access_tokens, *salesforce.access_tokens]
    for name, seen in lines.items():
        for line in seen:
            leaked = [form for secret in secrets for form in encodings(secret) if form in line]
            assert not leaked, f"a secret in a request line to {name}: {line}"


def test_no_secret_in_any_request_line_or_sftp_command_of_azure_gcs_and_sftp(
    tmp_path: Path, walkme: FakeWalkMe, google_token: FakeGoogleToken, gcs_emulator: str, gcs_bucket: str,
) -> None:
    """The stores beyond S3, both directions each: Azure (a private Azurite logging every request it gets, the
    account key in a connection string), GCS (the emulator and the service-account token endpoint behind it, a fresh
    service-account key) and SFTP (a private sshd logging at VERBOSE, a passphrase-protected key): no secret in
    a request line or in what sshd logged of the logins and sessions (its internal-sftp logs commands and paths
    to syslog only, which this sandbox lacks; the paths come from the spec, which holds no secret)."""
    marker = uuid.uuid4().hex
    client_secret, token, passphrase = f"wm/{marker}+s=", f"it {marker}/t+&=", KEY_PASSPHRASES["ed25519-passphrase"]
    walkme.clients["store-urls"] = client_secret
    walkme.integration_tokens[token] = "uuid"
    walkme.seed("users", [{"userId": "p9", "email": "p9@acme.example", "updatedAt": "2026-11-20T08:00:00Z"}])
    wm = {"walkme": {"clientId": "store-urls", "clientSecret": client_secret}, "integration-token": {"token": token}}
    people = b"id,email\np1,p1@acme.example\n"
    container = f"c{uuid.uuid4().hex[:12]}"
    azurite_log = tmp_path / "azurite-debug.log"
    with running_azurite(azurite_log) as azurite, running_proxy(gcs_emulator) as gcs_proxy, \
            running_proxy(google_token.token_uri.rsplit("/", 1)[0]) as token_proxy, running_sshd() as sshd:
        account = azurite.account_url
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        blobs.create_container(container)
        blobs.get_container_client(container).upload_blob("people.csv", people)
        azure = ({"azureBlob": {"accountUrl": account, "container": container,
                                "auth": {"secretRef": {"name": "z", "key": "connectionString"}}}},
                 {"connectionString": azurite.connection_string})
        key = json.loads(service_account_key(google_token))
        key["token_uri"] = f"{token_proxy.url}/{google_token.token_uri.rsplit('/', 1)[1]}"
        gcs_client(gcs_emulator).bucket(gcs_bucket).blob("people.csv").upload_from_string(people)
        gcs = ({"gcs": {"bucket": gcs_bucket, "endpointUrl": gcs_proxy.url,
                        "auth": {"secretRef": {"name": "g", "key": "key.json"}}}}, {"key.json": json.dumps(key)})
        folder = sshd.folder()
        (folder / "people.csv").write_bytes(people)
        sftp = ({"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(folder),
                          "hostKeys": sshd.known_hosts.splitlines(), "auth": {"secretRef": {"name": "sftp"}}}},
                {"privateKey": sshd.keys["ed25519-passphrase"], "passphrase": passphrase})
        inbound = {"direction": "Inbound", "destination": TO_WALKME, "source": {"file": {"path": "people.csv"}},
                   "mapping": {"key": {"source": "id", "destination": "uuid"},
                               "fields": [{"source": "email", "destination": "email"}]}}
        outbound = {"direction": "Outbound", "source": FROM_WALKME,
                    "destination": {"file": {"path": "out/{runId}.csv"}},
                    "mapping": {"key": {"source": "userId", "destination": "id"},
                                "fields": [{"source": "email", "destination": "email"}]}}
        runs = {f"{name} {spec['direction']}": sync(tmp_path, spec, store[0], walkme.url, {**wm, "external": store[1]})
                for name, store in (("Azure", azure), ("GCS", gcs), ("SFTP", sftp)) for spec in (inbound, outbound)}
        assert {name: run["result"] for name, run in runs.items()} == dict.fromkeys(runs, "Succeeded"), runs
        sftp_log = sshd.log.read_text()
    lines = {"Azure": azurite_log.read_text().splitlines(),
             "GCS": [f"{m} {p}?{q}" for m, p, q in gcs_proxy.seen + token_proxy.seen],
             "SFTP": sftp_log.splitlines()}
    assert all(lines.values()), {name: len(seen) for name, seen in lines.items()}
    assert any("Accepted publickey" in line for line in lines["SFTP"]), "sshd logged the logins"
    assert any(path.endswith("/token") for _, path, _ in token_proxy.seen), "the key was exchanged for a token"
    secrets = [client_secret, token, KEY, key["private_key"], passphrase, *walkme.access_tokens, *google_token.issued,
               *(line for line in sshd.keys["ed25519-passphrase"].splitlines() if "PRIVATE KEY" not in line)]
    for name, seen in lines.items():
        for line in seen:
            leaked = [form for secret in secrets for form in encodings(secret) if form in line]
            assert not leaked, f"a secret in what {name} received: {line}"
