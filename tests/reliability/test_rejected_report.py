"""Every rejected row kept where the user can fetch it after the Pod is gone (issue 21, item 6): a run with
1,000 rejections lists them all on its file Connection, status names the object, and no cell value is in
it. Real runs of the engine against moto and the fake WalkMe."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import Sshd
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from tests.reliability.test_exports_read_back import export
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

SECRET_CELL = "do-not-copy-7f3a"  # a value in every rejected row: the report must not carry it


def inbound(moto: str, bucket: str, walkme: FakeWalkMe, body: bytes, **spec: Any) -> SyncResult:
    s3_client(moto).put_object(Bucket=bucket, Key="dic/people.csv", Body=body)
    return run(walkme, {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto, "prefix": "dic/"}},
               {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, **spec)


def run(walkme: FakeWalkMe, connection: dict[str, Any], external: dict[str, str], **spec: Any) -> SyncResult:
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "people"}, "runId": f"run-{uuid.uuid4().hex[:6]}", "force": True,
        "spec": {"direction": "Inbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
                 "source": {"file": {"path": "people.csv"}},
                 "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                            "userIdProperty": "uuid"}},
                 "mapping": {"key": {"source": "id", "destination": "uuid"},
                             "fields": [{"source": "score", "destination": "score", "type": "number"},
                                        {"source": "note", "destination": "note"}]}, **spec},
        "connection": connection,
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })
    credentials = CredentialSet({"external": external,
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    return run_sync(request, credentials)


def people(good: int, bad: int) -> bytes:
    rows = [f"u{i},{i},fine" for i in range(good)] + [f"b{i},not-a-number,{SECRET_CELL}" for i in range(bad)]
    return ("id,score,note\n" + "\n".join(rows) + "\n").encode()


def fetched(moto: str, bucket: str, where: str) -> list[dict[str, str]]:
    key = where.removeprefix(f"s3://{bucket}/")
    text = s3_client(moto).get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert SECRET_CELL not in text, "no cell value in the report"
    return list(csv.DictReader(io.StringIO(text)))


def test_a_thousand_rejected_rows_are_all_listed_on_the_source_connection(moto_server: str, bucket: str,
                                                                        walkme: FakeWalkMe) -> None:
    result = inbound(moto_server, bucket, walkme, people(10, 1000), maxRejectedPercent=100)
    assert (result.result, result.rows_rejected, len(result.rejected)) == ("Succeeded", 1000, 20), result
    assert result.rejected_report is not None
    assert result.rejected_report.startswith(f"s3://{bucket}/dic/walkme-dic/rejected/people/run-")
    rows = fetched(moto_server, bucket, result.rejected_report)
    assert [int(r["line"]) for r in rows] == list(range(12, 1012))  # header is line 1, 10 good rows
    assert all("'not-a-number' is not a number" in r["reason"] for r in rows)


def test_a_run_failed_over_its_limit_lists_its_rejected_rows_too(moto_server: str, bucket: str,
                                                                 walkme: FakeWalkMe) -> None:
    result = inbound(moto_server, bucket, walkme, people(3, 5), maxRejectedRows=0)
    assert (result.result, result.reason) == ("Failed", "TooManyRejectedRows"), result
    assert result.rejected_report and len(fetched(moto_server, bucket, result.rejected_report)) == 5


def test_no_report_without_rejections_or_in_a_dry_run(moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    assert inbound(moto_server, bucket, walkme, people(3, 0)).rejected_report is None
    dry = inbound(moto_server, bucket, walkme, people(3, 2), maxRejectedRows=5, dryRun=True)
    assert dry.rejected_report is None and dry.rows_rejected == 2
    listed = s3_client(moto_server).list_objects_v2(Bucket=bucket, Prefix="dic/walkme-dic/rejected/")
    assert listed["KeyCount"] == 0, "a dry run writes no report (the first run wrote only its change detection state)"


def test_an_export_lists_its_rejected_records_on_the_destination_connection(moto_server: str, bucket: str,
                                                                            walkme: FakeWalkMe) -> None:
    records = [{"userId": "u1", "count": 1}, {"userId": "u2", "count": "n/a"}, {"userId": "u3", "count": "x"}]
    result, _ = export(walkme, moto_server, bucket, records, "csv", "none")
    assert (result.result, result.rows_rejected) == ("Succeeded", 2) and result.rejected_report, result
    rows = fetched(moto_server, bucket, result.rejected_report)
    assert [r["record"] for r in rows] == ["2", "3"]


def test_a_store_that_refuses_the_report_costs_the_report_not_the_run(sshd: Sshd, walkme: FakeWalkMe) -> None:
    """The report's folder cannot be made (a file is in its way, as a read-only grant would refuse it): the
    run imports what it can and says where the list could not go."""
    folder = sshd.folder()
    (folder / "people.csv").write_bytes(people(3, 2))
    (folder / "walkme-dic").write_text("in the way")
    result = run(walkme, {"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username,
                                   "path": str(folder), "hostKeys": sshd.known_hosts.splitlines(),
                                   "auth": {"secretRef": {"name": "sftp"}}}},
                 {"privateKey": sshd.keys["ecdsa"]}, maxRejectedRows=5)
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", 3, 2), result
    assert result.rejected_report is None
    assert "the list of all 2 rejected rows could not be written to sftp://" in result.message
