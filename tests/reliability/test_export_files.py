"""WalkMe's own data-out files as an outbound source, through the real engine (sync/export_files.py).

WalkMe's Data Integration Center writes CSV exports of a custom report into a customer's bucket (moto's S3
here); an Outbound Integration with dataset exportFiles reads each new file once and writes its rows to
Salesforce (the fake org) or a webhook (the receiver). The progress a run reports (watermark, exportedFiles)
is fed to the next run as the operator does (status → SyncState).
"""

from __future__ import annotations

import gzip
import uuid
from typing import Any

from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.fixtures.pki import Pki
from tests.fixtures.salesforce import SF_CLIENT_ID, SF_CLIENT_SECRET
from tests.fixtures.servers import s3_client
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


class Exports:
    """The bucket WalkMe exports into, and runs of one Integration that carry its progress on."""

    def __init__(self, moto: str, bucket: str, destination: dict[str, Any], connection: dict[str, Any],
                 external: dict[str, str], walkme_url: str, **spec: Any) -> None:
        self.s3, self.bucket, self.prefix = s3_client(moto), bucket, f"walkme/{uuid.uuid4().hex[:6]}/"
        self.destination, self.connection, self.external = destination, connection, external
        self.walkme_url, self.spec = walkme_url, spec
        self.moto = moto
        self.state: dict[str, Any] = {}

    def land(self, name: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"exports-in/{self.prefix}{name}", Body=body)

    def run(self) -> SyncResult:
        request = SyncRequest.model_validate({
            "integration": {"namespace": "ns", "name": "usage"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
            "spec": {"direction": "Outbound", "connectionRef": {"name": "crm"},
                     "walkmeConnectionRef": {"name": "walkme"},
                     "source": {"walkme": {"dataset": "exportFiles",
                                           "exportFiles": {"connectionRef": {"name": "walkme-exports"},
                                                           "prefix": self.prefix}}},
                     "destination": self.destination, "mapping": MAPPING, **self.spec},
            "connection": self.connection,
            "walkmeConnection": {"walkme": {"apiUrl": self.walkme_url, "auth": {"secretRef": {"name": "w"}}}},
            "exportConnection": {"s3": {"bucket": self.bucket, "region": "us-east-1", "endpointUrl": self.moto,
                                        "prefix": "exports-in/", "auth": {"secretRef": {"name": "aws"}}}},
            "state": self.state,
        })
        credentials = CredentialSet({"external": self.external,
                                     "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                     "exports": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}})
        result = run_sync(request, credentials)
        if result.result == "Succeeded":  # as the operator keeps it (integrations._record_finished)
            self.state = {"watermark": result.watermark,
                          "exportedFiles": [f.to_wire() for f in result.exported_files or []]}
        return result


def to_salesforce(moto: str, bucket: str, salesforce: FakeSalesforce, walkme_url: str, **spec: Any) -> Exports:
    return Exports(moto, bucket, TO_SALESFORCE,
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
    exports = Exports(moto_server, bucket, {"webhook": {"batchSize": 50}},
                      {"webhook": {"url": webhook_receiver.hook, "auth": {"secretRef": {"name": "hook"}}}},
                      {"signingSecret": WEBHOOK_SECRET, "ca.crt": webhook_pki.ca_pem}, walkme.url)
    exports.land("a.csv", export_file(["u1", "u2"]))
    exports.land("b.csv.gz", gzip.compress(export_file(["u3"])))
    assert exports.run().rows_written == 3
    assert sorted(r["WalkMe_Id__c"] for r in webhook_receiver.records()) == ["u1", "u2", "u3"]
    webhook_receiver.reset()
    assert exports.run().result == "Skipped"
    assert webhook_receiver.records() == []
