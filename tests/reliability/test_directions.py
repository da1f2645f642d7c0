"""Every direction with good data, a bad row and an empty source, through the real engine (`run_sync`).

Sources and destinations are the loopback servers: moto (S3), Azurite (Azure Blob), the fake
Salesforce org and the fake WalkMe API, gcp-storage-emulator (GCS), a private OpenSSH sshd (SFTP) and
a TLS webhook receiver. A bad row is a record whose key is empty: it must be rejected with its row
number while the good rows go through; an empty source must succeed with zero rows and leave no data
rows at the destination.
Then API faults injected by the fakes (WalkMe 429/500/503, Salesforce REQUEST_LIMIT_EXCEEDED/503, a
Bulk job that ends Failed, a webhook receiver answering 429/503/422 or losing its answer): each run
ends with the destination holding exactly the rows once, or nothing, and a result that says why.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.azurite import Azurite
from tests.fixtures.gcs import gcs_client
from tests.fixtures.pki import Pki
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import Sshd
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from tests.fixtures.webhook import WEBHOOK_SECRET
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

GOOD = [{"id": "p1", "email": "p1@acme.example"}, {"id": "p2", "email": "p2@acme.example"}]
DATA = {"good": GOOD, "bad row": [GOOD[0], {"id": "", "email": "nobody@acme.example"}, GOOD[1]], "empty": []}
WRITTEN = {"good": GOOD, "bad row": GOOD, "empty": []}


@dataclass
class Stores:
    """The loopback servers of this test, one fresh bucket and container per test."""

    moto: str
    bucket: str
    azurite: Azurite
    container: str
    walkme: FakeWalkMe
    salesforce: FakeSalesforce
    sshd: Sshd
    sftp_folder: Path
    gcs: str = ""
    gcs_bucket: str = ""
    webhook: WebhookReceiver | None = None
    webhook_pki: Pki | None = None

    @property
    def blobs(self) -> ContainerClient:
        return BlobServiceClient.from_connection_string(self.azurite.connection_string) \
            .get_container_client(self.container)


def as_csv(people: list[dict[str, str]]) -> bytes:
    return ("id,email\n" + "".join(f"{p['id']},{p['email']}\n" for p in people)).encode() if people else b""


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


# ---- the external side of each direction: (connection block, credentials, put or get people) ----

def s3_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"s3": {"bucket": stores.bucket, "region": "us-east-1", "endpointUrl": stores.moto}},
            {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})


def azure_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"azureBlob": {"accountUrl": stores.azurite.account_url, "container": stores.container,
                           "auth": {"secretRef": {"name": "z", "key": "connectionString"}}}},
            {"connectionString": stores.azurite.connection_string})


def salesforce_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"salesforce": {"instanceUrl": stores.salesforce.url, "auth": {"secretRef": {"name": "sf"}}}},
            {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET})


def sftp_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"sftp": {"host": stores.sshd.host, "port": stores.sshd.port, "username": stores.sshd.username,
                      "path": str(stores.sftp_folder), "hostKeys": stores.sshd.known_hosts.splitlines(),
                      "auth": {"secretRef": {"name": "sftp"}}}},
            {"privateKey": stores.sshd.keys["ecdsa"]})
def gcs_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"gcs": {"bucket": stores.gcs_bucket, "endpointUrl": stores.gcs, "auth": {"anonymous": True}}}, {})


def webhook_side(stores: Stores) -> tuple[dict[str, Any], dict[str, str]]:
    assert stores.webhook and stores.webhook_pki
    return ({"webhook": {"url": stores.webhook.hook, "auth": {"secretRef": {"name": "hook"}}}},
            {"signingSecret": WEBHOOK_SECRET, "ca.crt": stores.webhook_pki.ca_pem})


def put_s3(stores: Stores, people: list[dict[str, str]]) -> None:
    s3_client(stores.moto).put_object(Bucket=stores.bucket, Key="people.csv", Body=as_csv(people))


def put_azure(stores: Stores, people: list[dict[str, str]]) -> None:
    stores.blobs.upload_blob("people.csv", as_csv(people))


def put_sftp(stores: Stores, people: list[dict[str, str]]) -> None:
    (stores.sftp_folder / "people.csv").write_bytes(as_csv(people))
def put_gcs(stores: Stores, people: list[dict[str, str]]) -> None:
    gcs_client(stores.gcs).bucket(stores.gcs_bucket).blob("people.csv").upload_from_string(as_csv(people))


def put_salesforce(stores: Stores, people: list[dict[str, str]]) -> None:
    stores.salesforce.seed("Contact", [{"LastName": p["email"], "WalkMe_Id__c": p["id"] or None} for p in people])


def put_walkme(stores: Stores, people: list[dict[str, str]]) -> None:
    stores.walkme.seed("users", [{"userId": p["id"], "email": p["email"], "updatedAt": "2026-11-20T08:00:00Z"}
                                 for p in people])


def got_walkme(stores: Stores) -> list[dict[str, str]]:
    users = stores.walkme.users(WALKME_TOKEN)
    return sorted(({"id": user, "email": values["email"]} for user, values in users.items()), key=lambda p: p["id"])


def got_s3(stores: Stores) -> list[dict[str, str]]:
    return read_csv(s3_client(stores.moto).get_object(Bucket=stores.bucket, Key="out/people.csv")["Body"].read())


def got_azure(stores: Stores) -> list[dict[str, str]]:
    return read_csv(stores.blobs.download_blob("out/people.csv").readall())


def got_sftp(stores: Stores) -> list[dict[str, str]]:
    assert [p.name for p in (stores.sftp_folder / "out").iterdir()] == ["people.csv"], "no temporary file left"
    return read_csv((stores.sftp_folder / "out" / "people.csv").read_bytes())
def got_gcs(stores: Stores) -> list[dict[str, str]]:
    return read_csv(gcs_client(stores.gcs).bucket(stores.gcs_bucket).blob("out/people.csv").download_as_bytes())


def hook(stores: Stores) -> WebhookReceiver:
    assert stores.webhook
    return stores.webhook


def got_webhook(stores: Stores) -> list[dict[str, str]]:
    return hook(stores).records()


def got_salesforce(stores: Stores) -> list[dict[str, str]]:
    return sorted(({"id": c["WalkMe_Id__c"], "email": c["LastName"]} for c in stores.salesforce.records("Contact")),
                  key=lambda p: p["id"])


@dataclass(frozen=True)
class Direction:
    name: str
    side: Callable[[Stores], tuple[dict[str, Any], dict[str, str]]]
    put: Callable[[Stores, list[dict[str, str]]], None]
    got: Callable[[Stores], list[dict[str, str]]]
    source: dict[str, Any]
    destination: dict[str, Any]
    key: str
    email: str

    @property
    def inbound(self) -> bool:
        return "walkme" in self.destination


TO_WALKME = {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"}, "userIdProperty": "uuid"}}
FROM_WALKME = {"walkme": {"dataset": "users"}}
OUT_FILE = {"file": {"path": "out/people.csv"}}
IN_FILE = {"file": {"path": "people.csv"}}
DIRECTIONS = [
    Direction("S3 → WalkMe", s3_side, put_s3, got_walkme, IN_FILE, TO_WALKME, "id", "email"),
    Direction("Azure → WalkMe", azure_side, put_azure, got_walkme, IN_FILE, TO_WALKME, "id", "email"),
    Direction("SFTP → WalkMe", sftp_side, put_sftp, got_walkme, IN_FILE, TO_WALKME, "id", "email"),
    Direction("Salesforce → WalkMe", salesforce_side, put_salesforce, got_walkme,
              {"salesforce": {"soql": "SELECT WalkMe_Id__c, LastName FROM Contact"}}, TO_WALKME,
              "WalkMe_Id__c", "LastName"),
    Direction("WalkMe → S3", s3_side, put_walkme, got_s3, FROM_WALKME, OUT_FILE, "userId", "email"),
    Direction("WalkMe → Azure", azure_side, put_walkme, got_azure, FROM_WALKME, OUT_FILE, "userId", "email"),
    Direction("WalkMe → SFTP", sftp_side, put_walkme, got_sftp, FROM_WALKME, OUT_FILE, "userId", "email"),
    Direction("WalkMe → Salesforce", salesforce_side, put_walkme, got_salesforce, FROM_WALKME,
              {"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "WalkMe_Id__c"}},
              "userId", "email"),
    Direction("GCS → WalkMe", gcs_side, put_gcs, got_walkme, IN_FILE, TO_WALKME, "id", "email"),
    Direction("WalkMe → GCS", gcs_side, put_walkme, got_gcs, FROM_WALKME, OUT_FILE, "userId", "email"),
    Direction("WalkMe → webhook", webhook_side, put_walkme, got_webhook, FROM_WALKME, {"webhook": {"batchSize": 1}},
              "userId", "email"),
]


def request(direction: Direction, stores: Stores, connection: dict[str, Any]) -> SyncRequest:
    outbound_to = {"file": ("id", "email"), "salesforce": ("WalkMe_Id__c", "LastName"), "webhook": ("id", "email")}
    key, email = ("uuid", "email") if direction.inbound else outbound_to[next(iter(direction.destination))]
    return SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "directions"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
        "force": True,
        "spec": {"direction": "Inbound" if direction.inbound else "Outbound", "connectionRef": {"name": "x"},
                 "walkmeConnectionRef": {"name": "walkme"}, "source": direction.source,
                 "destination": direction.destination,
                 "mapping": {"key": {"source": direction.key, "destination": key},
                             "fields": [{"source": direction.email, "destination": email}]}},
        "connection": connection,
        "walkmeConnection": {"walkme": {"apiUrl": stores.walkme.url, "insightsExportUrl": stores.walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })


@pytest.fixture
def stores(moto_server: str, bucket: str, azurite: Azurite, walkme: FakeWalkMe, salesforce: FakeSalesforce,
           gcs_emulator: str, gcs_bucket: str, webhook_receiver: WebhookReceiver, webhook_pki: Pki,
           sshd: Sshd) -> Stores:
    container = f"c{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    return Stores(moto_server, bucket, azurite, container, walkme, salesforce, sshd, sshd.folder(), gcs=gcs_emulator,
                  gcs_bucket=gcs_bucket, webhook=webhook_receiver, webhook_pki=webhook_pki)


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("direction", DIRECTIONS, ids=[d.name for d in DIRECTIONS])
def test_direction(direction: Direction, data: str, stores: Stores) -> None:
    connection, external = direction.side(stores)
    direction.put(stores, DATA[data])
    credentials = CredentialSet({"external": external,
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    sync = request(direction, stores, connection)
    if not direction.inbound:  # an incremental export refuses any rejected row unless a limit allows it
        sync = sync.model_copy(update={"spec": sync.spec.model_copy(update={"max_rejected_rows": 1})})
    result: SyncResult = run_sync(sync, credentials)
    assert (result.result, result.rows_read) == ("Succeeded", len(DATA[data])), result
    assert (result.rows_written, result.rows_rejected) == (len(WRITTEN[data]), len(DATA[data]) - len(WRITTEN[data]))
    if data == "bad row":
        where = "line 3" if "file" in direction.source else "record 2"  # a file's rows are its lines (header: 1)
        assert [r.row for r in result.rejected] == [int(where.split()[1])], result.rejected
        assert result.rejected[0].reason.startswith(f"{where}: "), result.rejected
        assert "(the key) is empty" in result.rejected[0].reason
        if not direction.inbound:  # a run that left a row out never reads as a clean Synced
            assert result.reason == "RowsRejected", result
    assert direction.got(stores) == WRITTEN[data]


# ---- API faults during a run: the final state of the destination and the run's result ----------

@dataclass(frozen=True)
class Fault:
    name: str
    direction: str
    inject: Callable[[Stores], None]
    result: str = "Succeeded"
    says: str = ""
    written: tuple[dict[str, str], ...] = tuple(GOOD)
    destination: dict[str, Any] | None = None


BY_NAME = {d.name: d for d in DIRECTIONS}
BULK_UPSERT = {"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "WalkMe_Id__c",
                              "bulkThreshold": 1}}
FAULTS = [
    Fault("WalkMe 429 with Retry-After", "S3 → WalkMe",
          lambda s: s.walkme.fail_next(r"/public/v1/user/data$", 2, 429, {"Retry-After": "1"})),
    Fault("WalkMe 500 on a batch", "S3 → WalkMe", lambda s: s.walkme.fail_next(r"/public/v1/user/data$", 1, 500)),
    Fault("WalkMe 503 on an export page", "WalkMe → S3",
          lambda s: s.walkme.fail_next(r"/insights/export/users$", 1, 503)),
    Fault("Salesforce REQUEST_LIMIT_EXCEEDED on the write", "WalkMe → Salesforce",
          lambda s: s.salesforce.throttle(2, kind="collections")),
    Fault("Salesforce 503 on the query", "Salesforce → WalkMe", lambda s: s.salesforce.unavailable(1, kind="query")),
    Fault("Salesforce Bulk job ends Failed, its records go into a new job", "WalkMe → Salesforce",
          lambda s: s.salesforce.fail_next_bulk_job("InternalServerError : the job could not be processed"),
          destination=BULK_UPSERT),
    Fault("Salesforce Bulk job and its second job end Failed", "WalkMe → Salesforce",
          lambda s: [s.salesforce.fail_next_bulk_job("InternalServerError : the job could not be processed")
                     for _ in range(2)],
          result="Failed", says="the job did not complete: InternalServerError", written=(), destination=BULK_UPSERT),
    Fault("webhook 429 with Retry-After", "WalkMe → webhook",
          lambda s: hook(s).fail_next(2, 429, "slow down", {"Retry-After": "1"})),
    Fault("webhook 503 on a batch", "WalkMe → webhook",
          lambda s: hook(s).fail_next(1, 503)),
    Fault("webhook answer lost after the receiver stored the batch", "WalkMe → webhook",
          lambda s: hook(s).hang_up_next(1)),
    Fault("webhook refuses a batch with 422", "WalkMe → webhook",
          lambda s: hook(s).fail_next(1, 422, '{"error": "email is not allowed here"}'),
          result="Failed", says="refused batch 1 (records 1-2) with HTTP 422: {\"error\": \"email is not allowed",
          written=(), destination={"webhook": {"batchSize": 2}}),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_during_a_run(fault: Fault, stores: Stores) -> None:
    direction = BY_NAME[fault.direction]
    if fault.destination:
        direction = Direction(**{**direction.__dict__, "destination": fault.destination})
    connection, external = direction.side(stores)
    direction.put(stores, GOOD)
    fault.inject(stores)
    credentials = CredentialSet({"external": external,
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    result = run_sync(request(direction, stores, connection), credentials)
    assert result.result == fault.result, result
    assert fault.says in result.message
    assert direction.got(stores) == list(fault.written), "exactly the rows once, or nothing"
    pending = [f.remaining for f in [*stores.walkme.faults, *stores.salesforce.faults, *hook(stores).script]]
    assert not any(pending) and not stores.salesforce._fail_jobs, "every injected fault was hit"
