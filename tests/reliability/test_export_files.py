"""WalkMe's own data-out files as an outbound source, through the real engine (sync/export_files.py).

WalkMe's Data Integration Center writes CSV exports of a custom report into a customer's bucket (moto's S3, or
an Azurite container); an Outbound Integration with dataset exportFiles reads each new file once and writes its
rows to Salesforce (the fake org), a webhook (the receiver) or another file store (an SFTP server, S3). The
progress a run reports (watermark, exportedFiles) is fed to the next run as the operator does (status →
SyncState). The runs to another store have no WalkMe Connection at all: this source calls no WalkMe API.
"""

from __future__ import annotations

import csv
import gzip
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import BlobServiceClient

from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.azurite import Azurite
from tests.fixtures.pki import Pki
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import Sshd
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET
from tests.fixtures.webhook import WEBHOOK_SECRET
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

HEADER = "User ID,Name,Email,Sessions,Last Seen\n"
MAPPING = {"key": {"source": "User ID", "destination": "WalkMe_Id__c"},
           "fields": [{"source": "Name", "destination": "LastName"}, {"source": "Email", "destination": "Email"},
                      {"source": "Sessions", "destination": "Score__c", "type": "number"},
                      {"source": "Last Seen", "destination": "Last_Seen__c", "type": "date"}]}
TO_SALESFORCE = {"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "WalkMe_Id__c"}}


def export_file(users: list[str], sessions: str = "3") -> bytes:
    """A custom report as WalkMe's DIC exports it (assumption A14): a header of its columns, a row per user."""
    return (HEADER + "".join(f"{u},{u.title()},{u}@acme.example,{sessions},2026-11-30\n" for u in users)).encode()


@dataclass(frozen=True)
class ExportStore:
    """Where WalkMe's DIC exports into: the export Connection's block (prefix exports-in/), its Secret's keys,
    and how a file lands there (the object's full name, its bytes)."""

    connection: dict[str, Any]
    credentials: dict[str, str]
    put: Callable[[str, bytes], None]


def s3_exports(moto: str, bucket: str) -> ExportStore:
    def put(key: str, body: bytes) -> None:
        s3_client(moto).put_object(Bucket=bucket, Key=key, Body=body)

    return ExportStore({"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto, "prefix": "exports-in/",
                               "auth": {"secretRef": {"name": "aws"}}}},
                       {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, put)


def sftp_exports(sshd: Sshd) -> ExportStore:
    folder = sshd.folder()

    def put(name: str, body: bytes) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part")  # as an uploader that renames when done
        temporary.write_bytes(body)
        temporary.replace(target)

    return ExportStore({"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username,
                                 "path": str(folder / "exports-in"), "hostKeys": sshd.known_hosts.splitlines(),
                                 "auth": {"secretRef": {"name": "sftp"}}}},
                       {"privateKey": sshd.keys["ecdsa"]}, put)


def azure_exports(azurite: Azurite) -> ExportStore:
    container = f"exports-{uuid.uuid4().hex[:8]}"
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)

    def put(name: str, body: bytes) -> None:
        blobs.upload_blob(name, body, overwrite=True)

    return ExportStore({"azureBlob": {"accountUrl": azurite.account_url, "container": container,
                                      "prefix": "exports-in/",
                                      "auth": {"secretRef": {"name": "azure", "key": "connectionString"}}}},
                       {"connectionString": azurite.connection_string}, put)


class Exports:
    """The bucket WalkMe exports into, and runs of one Integration that carry its progress on. Without
    ``walkme_url`` the runs have no WalkMe Connection (walkmeConnectionRef left out)."""

    def __init__(self, store: ExportStore, destination: dict[str, Any], connection: dict[str, Any],
                 external: dict[str, str], walkme_url: str | None, mapping: dict[str, Any] = MAPPING,
                 **spec: Any) -> None:
        self.store, self.prefix = store, f"walkme/{uuid.uuid4().hex[:6]}/"
        self.destination, self.connection, self.external = destination, connection, external
        self.walkme_url, self.mapping, self.spec = walkme_url, mapping, spec
        self.state: dict[str, Any] = {}

    def land(self, name: str, body: bytes) -> None:
        self.store.put(f"exports-in/{self.prefix}{name}", body)

    def run(self) -> SyncResult:
        walkme = {"walkmeConnectionRef": {"name": "walkme"}} if self.walkme_url else {}
        request = SyncRequest.model_validate({
            "integration": {"namespace": "ns", "name": "usage"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
            "spec": {"direction": "Outbound", "connectionRef": {"name": "crm"}, **walkme,
                     "source": {"walkme": {"dataset": "exportFiles",
                                           "exportFiles": {"connectionRef": {"name": "walkme-exports"},
                                                           "prefix": self.prefix}}},
                     "destination": self.destination, "mapping": self.mapping, **self.spec},
            "connection": self.connection,
            **({"walkmeConnection": {"walkme": {"apiUrl": self.walkme_url, "insightsExportUrl": self.walkme_url,
                                                "auth": {"secretRef": {"name": "w"}}}}}
               if self.walkme_url else {}),
            "exportConnection": self.store.connection,
            "state": self.state,
        })
        credentials = CredentialSet({"external": self.external, "exports": self.store.credentials,
                                     **({"walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}}
                                        if self.walkme_url else {})})
        result = run_sync(request, credentials)
        if result.result == "Succeeded":  # as the operator keeps it (integrations._record_finished)
            self.state = {"watermark": result.watermark,
                          "exportedFiles": [f.to_wire() for f in result.exported_files or []]}
        return result


def to_salesforce(moto: str, bucket: str, salesforce: FakeSalesforce, walkme_url: str, **spec: Any) -> Exports:
    return Exports(s3_exports(moto, bucket), TO_SALESFORCE,
                   {"salesforce": {"instanceUrl": salesforce.url, "auth": {"secretRef": {"name": "sf"}}}},
                   {"clientId": SF_CLIENT_ID, "clientSecret": SF_CLIENT_SECRET}, walkme_url, **spec)


def test_each_new_export_file_reaches_salesforce_once(moto_server: str, bucket: str, salesforce: FakeSalesforce,
                                                      walkme: FakeWalkMe) -> None:
    exports = to_salesforce(moto_server, bucket, salesforce, walkme.url)
    exports.land("usage-1.csv", export_file(["u1", "u2"]))
    exports.land("usage-2.csv", export_file(["u3"]))
    first = exports.run()
    assert (first.result, first.rows_read, first.rows_written) == ("Succeeded", 3, 3), first
    stored = {r["WalkMe_Id__c"]: r for r in salesforce.records("Contact")}
    assert set(stored) == {"u1", "u2", "u3"}
    assert (stored["u1"]["Score__c"], stored["u1"]["Last_Seen__c"], stored["u1"]["Email"]) == \
        (3, "2026-11-30", "u1@acme.example")
    assert [f.path for f in first.exported_files or []] == [f"{exports.prefix}usage-1.csv",
                                                             f"{exports.prefix}usage-2.csv"]

    exports.land("usage-3.csv", export_file(["u4", "u5"]))
    calls = salesforce.api_calls
    second = exports.run()
    assert (second.result, second.rows_read, second.rows_written) == ("Succeeded", 2, 2), "only the new file"
    assert {r["WalkMe_Id__c"] for r in salesforce.records("Contact")} == {"u1", "u2", "u3", "u4", "u5"}
    assert salesforce.api_calls > calls

    calls = salesforce.api_calls
    third = exports.run()
    assert (third.result, third.reason, third.rows_read) == ("Skipped", "SourceUnchanged", 0), third
    assert salesforce.api_calls == calls, "nothing new: nothing written, not even a login"


def test_a_replaced_export_file_is_read_again(moto_server: str, bucket: str, salesforce: FakeSalesforce,
                                              walkme: FakeWalkMe) -> None:
    exports = to_salesforce(moto_server, bucket, salesforce, walkme.url)
    exports.land("usage.csv", export_file(["u1"]))
    assert exports.run().rows_written == 1
    exports.land("usage.csv", export_file(["u1", "u2"], sessions="7"))  # WalkMe wrote it again: a new ETag
    again = exports.run()
    assert (again.result, again.rows_read) == ("Succeeded", 2), again
    assert {r["WalkMe_Id__c"]: r["Score__c"] for r in salesforce.records("Contact")} == {"u1": 7, "u2": 7}


def test_a_bad_row_is_rejected_with_its_file_and_line_and_a_failed_run_marks_no_file_read(
    moto_server: str, bucket: str, salesforce: FakeSalesforce, walkme: FakeWalkMe,
) -> None:
    exports = to_salesforce(moto_server, bucket, salesforce, walkme.url)
    exports.land("usage-1.csv", export_file(["u1", "u2"]))
    exports.land("usage-2.csv", (HEADER + "u3,U3,u3@acme.example,3,2026-11-30\n\n"
                                 "u4,U4,u4@acme.example,lots,2026-11-30\n").encode())
    failed = exports.run()  # since: lastRun and no limit set: no row may be left behind
    assert (failed.result, failed.reason) == ("Failed", "TooManyRejectedRows"), failed
    assert [r.reason.split(":")[0] for r in failed.rejected] == [f"{exports.prefix}usage-2.csv line 4"], failed
    assert exports.state == {}, "a failed run marks no file read"

    exports.spec["maxRejectedRows"] = 1
    kept = exports.run()  # both files again, the bad row rejected, the others written
    assert (kept.result, kept.reason, kept.rows_read, kept.rows_written, kept.rows_rejected) == \
        ("Succeeded", "RowsRejected", 4, 3, 1), kept
    assert kept.rejected[0].row == 4 and kept.rejected[0].reason.startswith(f"{exports.prefix}usage-2.csv line 4: ")
    assert "Sessions" in kept.rejected[0].reason
    assert exports.run().result == "Skipped", "both files are read now"


def test_a_damaged_export_file_fails_the_run_naming_file_and_line(
    moto_server: str, bucket: str, salesforce: FakeSalesforce, walkme: FakeWalkMe,
) -> None:
    exports = to_salesforce(moto_server, bucket, salesforce, walkme.url, maxRejectedRows=10)
    exports.land("usage.csv", (HEADER + "u1,U1,u1@acme.example,3\n").encode())
    failed = exports.run()
    assert (failed.result, failed.reason) == ("Failed", "CorruptFile"), failed
    assert failed.message.startswith(f"{exports.prefix}usage.csv line 2: has 4 fields, the header has 5")
    assert exports.state == {}


def test_export_files_reach_a_webhook_once(moto_server: str, bucket: str, webhook_receiver: WebhookReceiver,
                                           webhook_pki: Pki, walkme: FakeWalkMe) -> None:
    exports = Exports(s3_exports(moto_server, bucket), {"webhook": {"batchSize": 50}},
                      {"webhook": {"url": webhook_receiver.hook, "auth": {"secretRef": {"name": "hook"}}}},
                      {"signingSecret": WEBHOOK_SECRET, "ca.crt": webhook_pki.ca_pem}, walkme.url)
    exports.land("a.csv", export_file(["u1", "u2"]))
    exports.land("b.csv.gz", gzip.compress(export_file(["u3"])))
    assert exports.run().rows_written == 3
    assert sorted(r["WalkMe_Id__c"] for r in webhook_receiver.records()) == ["u1", "u2", "u3"]
    webhook_receiver.reset()
    assert exports.run().result == "Skipped"
    assert webhook_receiver.records() == []


# ---- to another file store: the export files' rows as one file per run, with no WalkMe Connection at all ----

AS_FILE = {"key": {"source": "User ID", "destination": "user_id"},
           "fields": [{"source": "Email", "destination": "email"}, {"source": "Sessions", "destination": "sessions"}]}
PER_RUN = {"file": {"path": "usage/{runId}.csv"}}  # since: lastRun never overwrites a run's file: one per run


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_export_files_in_s3_reach_an_sftp_server_once(moto_server: str, bucket: str, sshd: Sshd) -> None:
    folder = sshd.folder()
    exports = Exports(s3_exports(moto_server, bucket), PER_RUN,
                      {"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(folder),
                                "hostKeys": sshd.known_hosts.splitlines(), "auth": {"secretRef": {"name": "sftp"}}}},
                      {"privateKey": sshd.keys["ecdsa"]}, None, mapping=AS_FILE)
    exports.land("usage-1.csv", export_file(["u1", "u2"]))
    exports.land("usage-2.csv.gz", gzip.compress(export_file(["u3"], sessions="5")))
    first = exports.run()
    assert (first.result, first.rows_read, first.rows_written) == ("Succeeded", 3, 3), first
    [written] = (folder / "usage").iterdir()
    assert rows(written.read_bytes()) == [
        {"user_id": "u1", "email": "u1@acme.example", "sessions": "3"},
        {"user_id": "u2", "email": "u2@acme.example", "sessions": "3"},
        {"user_id": "u3", "email": "u3@acme.example", "sessions": "5"}], "the files' rows, oldest file first"

    exports.land("usage-3.csv", export_file(["u4"]))
    second = exports.run()
    assert (second.result, second.rows_written) == ("Succeeded", 1), second
    [newer] = set((folder / "usage").iterdir()) - {written}
    assert [r["user_id"] for r in rows(newer.read_bytes())] == ["u4"], "only the new export file"

    third = exports.run()
    assert (third.result, third.reason) == ("Skipped", "SourceUnchanged"), third
    assert len(list((folder / "usage").iterdir())) == 2, "nothing new: no file written"


def test_export_files_in_azure_reach_s3_once_and_a_replaced_one_again(moto_server: str, bucket: str,
                                                                     azurite: Azurite) -> None:
    exports = Exports(azure_exports(azurite), PER_RUN,
                      {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server,
                              "prefix": "from-walkme/", "auth": {"secretRef": {"name": "aws"}}}},
                      {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, None, mapping=AS_FILE)
    s3 = s3_client(moto_server)

    def written() -> dict[str, list[dict[str, str]]]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="from-walkme/usage/").get("Contents", [])
        return {o["Key"]: rows(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed}

    exports.land("usage.csv", export_file(["u1", "u2"]))
    first = exports.run()
    assert (first.result, first.rows_written) == ("Succeeded", 2), first
    assert [[r["user_id"] for r in file] for file in written().values()] == [["u1", "u2"]]
    assert exports.run().result == "Skipped", "read once"

    exports.land("usage.csv", export_file(["u1", "u2", "u3"], sessions="9"))  # WalkMe wrote it again: a new ETag
    again = exports.run()
    assert (again.result, again.rows_written) == ("Succeeded", 3), again
    files = written()
    assert len(files) == 2 and sorted(r["sessions"] for file in files.values() for r in file) == \
        ["3", "3", "9", "9", "9"], files


def test_export_files_on_an_sftp_server_reach_s3_once_and_a_rewritten_one_again(moto_server: str, bucket: str,
                                                                               sshd: Sshd) -> None:
    """An SFTP folder as the place WalkMe exports into: each file once, by size and mtime; a file still under a
    hidden temporary name is not read; one written again is read again."""
    store = sftp_exports(sshd)
    exports = Exports(store, PER_RUN,
                      {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server,
                              "prefix": "from-sftp/", "auth": {"secretRef": {"name": "aws"}}}},
                      {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, None, mapping=AS_FILE)
    s3 = s3_client(moto_server)

    def written() -> list[list[str]]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="from-sftp/usage/").get("Contents", [])
        return sorted(sorted(r["user_id"] for r in rows(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()))
                      for o in listed)

    exports.land("usage-1.csv", export_file(["u1", "u2"]))
    exports.land("2026-12/usage-2.csv", export_file(["u3"]))  # a folder below the prefix
    exports.land(".usage-3.csv.part", export_file(["u9"]))  # an upload not finished: hidden
    first = exports.run()
    assert (first.result, first.rows_written) == ("Succeeded", 3), first
    assert written() == [["u1", "u2", "u3"]]
    assert exports.run().result == "Skipped", "read once"

    exports.land("usage-1.csv", export_file(["u1", "u2", "u4"]))  # written again: another size
    again = exports.run()
    assert (again.result, again.rows_written) == ("Succeeded", 3), again
    assert written() == [["u1", "u2", "u3"], ["u1", "u2", "u4"]]
