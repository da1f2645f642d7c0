"""Bad input corpus: each case gets a specific error (row, field, reason) and nothing is half-written.

Files go to moto's S3 server (and the same corpus to gcp-storage-emulator); the real engine
(`run_sync`) imports them into the fake WalkMe.
Invalid manifests are the cases of tests/unit/test_invalid_manifests.py.
"""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.gcs import gcs_client
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

HEADER = b"id,plan,seats,since,active\n"


@dataclass
class Case:
    name: str
    body: bytes
    outcome: str = "Succeeded"
    reason: str | None = None
    says: str = ""  # a substring of the message or of the first rejection
    written: int | None = None
    rejected: int | None = None
    duplicates: int = 0
    file: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)


def csv(*rows: str) -> bytes:
    return HEADER + "".join(r + "\n" for r in rows).encode()


GOOD = "u1,gold,3,2024-01-01,true"
ALL_REJECTED: dict[str, Any] = {"outcome": "Failed", "reason": "NothingApplied"}  # not a success (issue 21)
CASES = [
    Case("ragged short row", csv(GOOD, "u2,gold"), written=1, rejected=1, says="line 3: has 2 fields"),
    Case("ragged long row", csv(GOOD, "u2,gold,3,2024-01-01,true,extra"), written=1, rejected=1,
         says="has 6 fields"),
    Case("unclosed quote", csv(GOOD, 'u2,"gold,3,2024-01-01,true'), rejected=1, says="malformed CSV"),
    Case("unclosed quote before more rows", csv(GOOD, 'u2,"gold,3,2024-01-01,true', "u3,gold,3,2024-01-01,false"),
         "Failed", "UnbalancedQuote", "line 3 of the file opens a quoted field"),
    Case("wrong delimiter", b"id;plan;seats;since;active\nu1;gold;3;2024-01-01;true\n", "Failed", "MissingColumn",
         "delimiter"),
    Case("missing key column", b"plan,seats,since,active\ngold,3,2024-01-01,true\n", "Failed", "MissingColumn",
         "'id'"),
    Case("missing active column", b"id,plan,seats,since\nu1,gold,3,2024-01-01\n", "Failed", "MissingColumn",
         "'active'"),
    Case("utf-8 BOM", b"\xef\xbb\xbf" + csv(GOOD), written=1),
    Case("lone surrogate decoded by the declared codec", csv(GOOD, "u2,gold\\ud800,3,2024-01-01,true"), written=1,
         rejected=1, says="line 3: a value holds text that is not Unicode", file={"encoding": "unicode_escape"}),
    Case("non UTF-8 bytes", HEADER + "u1,Zoë,3,2024-01-01,true\n".encode("latin-1"), "Failed", "BadEncoding",
         "encoding"),
    Case("latin-1 declared", HEADER + "u1,Zoë,3,2024-01-01,true\n".encode("latin-1"), written=1,
         file={"encoding": "latin-1"}),
    Case("duplicate keys: last wins", csv(GOOD, "u1,silver,4,2024-02-01,false"), written=1, duplicates=1),
    Case("empty file", b"", reason="EmptySource", says="no data rows", written=0),
    Case("header only", HEADER, reason="EmptySource", says="no data rows", written=0),
    Case("header only, failOnEmptySource", HEADER, "Failed", "EmptySource", "no data rows",
         spec={"failOnEmptySource": True}),
    Case("blank lines", csv(GOOD, "", "u2,gold,3,2024-01-01,true"), written=2),
    Case("a blank line before a bad row", csv(GOOD, "", "u2,gold,x,2024-01-01,true"), written=1, rejected=1,
         says="line 4: column 'seats'"),
    Case("CRLF line endings", HEADER.replace(b"\n", b"\r\n") + b"u1,gold,3,2024-01-01,true\r\n", written=1),
    Case("quoted comma and newline", csv('u1,"gold, ""plus""\nline",3,2024-01-01,true'), written=1),
    Case("extra unmapped columns", b"id,plan,seats,since,active,x\nu1,gold,3,2024-01-01,true,y\n", written=1),
    Case("bad number", csv("u1,gold,three,2024-01-01,true"), rejected=1, says="column 'seats': 'three'",
         **ALL_REJECTED),
    Case("decimal comma", csv('u1,gold,"1,5",2024-01-01,true'), rejected=1, says="is not a number", **ALL_REJECTED),
    Case("NaN", csv("u1,gold,nan,2024-01-01,true"), rejected=1, says="finite", **ALL_REJECTED),
    Case("number beyond 2^53", csv("u1,gold,12345678901234567890,2024-01-01,true"), rejected=1, says="2^53",
         **ALL_REJECTED),
    Case("superscript digit as number", csv("u1,gold,\u00b2,2024-01-01,true"), rejected=1, says="is not a number",
         **ALL_REJECTED),
    Case("Arabic-Indic digits as number", csv("u1,gold,\u0663\u0664,2024-01-01,true"), written=1),
    Case("bad boolean", csv("u1,gold,3,2024-01-01,maybe"), rejected=1, says="column 'active': 'maybe'", **ALL_REJECTED),
    Case("empty active", csv("u1,gold,3,2024-01-01,"), rejected=1, says="active column", **ALL_REJECTED),
    Case("empty key", csv(",gold,3,2024-01-01,true"), rejected=1, says="(the key) is empty", **ALL_REJECTED),
    Case("whitespace key", csv("   ,gold,3,2024-01-01,true"), rejected=1, says="(the key) is empty", **ALL_REJECTED),
    Case("bad date", csv("u1,gold,3,yesterday,true"), rejected=1, says="column 'since': 'yesterday'", **ALL_REJECTED),
    Case("US date", csv("u1,gold,3,03/01/2024,true"), rejected=1, says="YYYY-MM-DD", **ALL_REJECTED),
    Case("impossible date", csv("u1,gold,3,2024-02-30,true"), rejected=1, says="not a date", **ALL_REJECTED),
    Case("datetime becomes date", csv("u1,gold,3,2024-01-01T10:00:00Z,true"), written=1),
    Case("empty optional value is not sent", csv("u1,,,2024-01-01,true"), written=1),
    Case("10 MB single line", HEADER + b"u1," + b"x" * (10 * 1024 * 1024) + b",3,2024-01-01,true\n", rejected=1,
         says="line 2: column 'plan': 10485760 characters, more than the 8192 a value may have", **ALL_REJECTED),
    Case("truncated gzip", gzip.compress(csv(*[GOOD] * 2000))[:-64], "Failed", "CorruptFile", "truncated"),
    Case("gzip declared but plain", csv(GOOD), "Failed", "CorruptFile", "not gzip", file={"compression": "gzip"}),
    Case("gzip auto-detected", gzip.compress(csv(GOOD)), written=1),
    Case("over maxRejectedRows", csv("u1,gold,x,2024-01-01,true", "u2,gold,y,2024-01-01,true", GOOD), "Failed",
         "TooManyRejectedRows", "nothing was written", spec={"maxRejectedRows": 1}),
    Case("over maxRejectedPercent", csv("u1,gold,x,2024-01-01,true", GOOD), "Failed", "TooManyRejectedRows",
         "50.0%", spec={"maxRejectedPercent": 10}),
    Case("within maxRejectedPercent", csv("u1,gold,x,2024-01-01,true", *[GOOD] * 19), written=1, rejected=1,
         duplicates=18, spec={"maxRejectedPercent": 10}),
    Case("all rows bad", csv("u1,gold,x,bad,maybe"), "Failed", "TooManyRejectedRows", "more than maxRejectedRows 0",
         spec={"maxRejectedRows": 0}),
    Case("dry run writes nothing", csv(GOOD, "u2,gold,x,2024-01-01,true"), "Succeeded", "DryRun", "dry run",
         written=1, rejected=1, spec={"dryRun": True}),
]
JSONL_CASES = [
    Case("jsonl broken line", b'{"id":"u1","active":true}\n{"id": \n{"id":"u2","active":true}\n', written=2,
         rejected=1, says="line 2: not valid JSON"),
    Case("jsonl array line", b'[1,2]\n{"id":"u1","active":true}\n', written=1, rejected=1, says="JSON list"),
    Case("jsonl number line", b'42\n{"id":"u1","active":true}\n', written=1, rejected=1, says="JSON int"),
    Case("jsonl missing key", b'{"plan":"gold","active":true}\n', rejected=1, says="(the key) is empty",
         **ALL_REJECTED),
    Case("jsonl null key", b'{"id":null,"active":true}\n', rejected=1, says="(the key) is empty", **ALL_REJECTED),
    Case("jsonl wrong type for number", b'{"id":"u1","seats":"many","active":true}\n', rejected=1,
         says="'many' is not a number", **ALL_REJECTED),
    Case("jsonl boolean as number", b'{"id":"u1","seats":true,"active":true}\n', rejected=1, says="not a number",
         **ALL_REJECTED),
    Case("jsonl nested object value", b'{"id":"u1","plan":{"a":1},"active":true}\n', rejected=1,
         says="column 'plan': a JSON object is not text", **ALL_REJECTED),
    Case("jsonl array value", b'{"id":"u1","plan":["a"],"active":true}\n', rejected=1, says="a JSON array",
         **ALL_REJECTED),
    Case("jsonl object as the key", b'{"id":{"email":"a@x"},"plan":"gold","active":true}\n', rejected=1,
         says="column 'id': a JSON object", **ALL_REJECTED),
    Case("jsonl NaN in a string field", b'{"id":"u1","plan":NaN,"active":true}\n', rejected=1, says="NaN",
         **ALL_REJECTED),
    Case("jsonl Infinity in a string field", b'{"id":"u1","plan":Infinity,"active":true}\n', rejected=1,
         says="no NaN or Infinity", **ALL_REJECTED),
    Case("jsonl integer beyond 2^53", b'{"id":"u1","seats":9007199254740993,"active":true}\n', rejected=1,
         says="2^53", **ALL_REJECTED),
    Case("jsonl empty lines", b'\n\n{"id":"u1","active":"true"}\n\n', written=1),
    Case("jsonl a blank line before a bad row", b'{"id":"u1","active":true}\n\n{"id":"u2","seats":"x","active":true}\n',
         written=1, rejected=1, says="line 3: column 'seats'"),
    Case("jsonl gzip truncated", gzip.compress(b'{"id":"u1","active":true}\n' * 3000)[:-50], "Failed", "CorruptFile",
         "truncated"),
    Case("jsonl numeric key", b'{"id":7,"active":true}\n', written=1),
    Case("jsonl lone surrogate in a value", b'{"id":"u1","plan":"\\ud800","active":true}\n{"id":"u2","active":true}\n',
         written=1, rejected=1, says="line 1: a value holds text that is not Unicode"),
    Case("jsonl lone surrogate in the key", b'{"id":"u\\udfff","active":true}\n', rejected=1, says="lone surrogate",
         **ALL_REJECTED),
]


def request(bucket: str, moto: str, walkme_url: str, case: Case, fmt: str) -> SyncRequest:
    return SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "bad-inputs"},
        "runId": f"run-{uuid.uuid4().hex[:6]}",
        "force": True,
        "spec": {
            "direction": "Inbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
            "source": {"file": {"path": "in.data", "format": fmt, **case.file}},
            "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                       "userIdProperty": "uuid"}},
            "mapping": {"key": {"source": "id", "destination": "uuid"},
                        "fields": [{"source": "plan", "destination": "plan"},
                                   {"source": "seats", "destination": "seats", "type": "number"},
                                   {"source": "since", "destination": "since", "type": "date"}],
                        "activeField": "active"},
            **case.spec,
        },
        "connection": {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme_url, "insightsExportUrl": walkme_url,
                                        "auth": {"secretRef": {"name": "w"}}}},
    })


CREDENTIALS = CredentialSet({"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                             "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                             "integration-token": {"token": WALKME_TOKEN}})


PARAMETERS = [(c, "csv") for c in CASES] + [(c, "jsonl") for c in JSONL_CASES]
IDS = [c.name for c in CASES + JSONL_CASES]


def check(case: Case, result: SyncResult, walkme: FakeWalkMe) -> None:
    assert result.result == case.outcome, result
    if case.reason:
        assert result.reason == case.reason, result
    said = result.message + " | " + " | ".join(r.reason for r in result.rejected)
    assert case.says in said, said
    if case.written is not None:
        assert result.rows_written == case.written, result
    if case.rejected is not None:
        assert result.rows_rejected == case.rejected, result
    assert result.duplicate_keys == case.duplicates, result
    for sample in result.rejected:
        assert sample.row >= 1 and sample.reason.startswith(f"line {sample.row}: "), sample
    stored = walkme.users(WALKME_TOKEN)
    if case.outcome == "Failed" or case.spec.get("dryRun"):
        assert stored == {}, "a failed or dry run wrote nothing"
    else:
        assert len(stored) == len({*stored}) and len(stored) <= result.rows_written


@pytest.mark.parametrize(("case", "fmt"), PARAMETERS, ids=IDS)
def test_bad_input(case: Case, fmt: str, bucket: str, moto_server: str, walkme: FakeWalkMe) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="in.data", Body=case.body)
    check(case, run_sync(request(bucket, moto_server, walkme.url, case, fmt), CREDENTIALS), walkme)


@pytest.mark.parametrize(("case", "fmt"), PARAMETERS, ids=IDS)
def test_bad_input_from_gcs(case: Case, fmt: str, gcs_emulator: str, gcs_bucket: str, walkme: FakeWalkMe) -> None:
    """The same corpus read from GCS (generation-pinned ranged reads): the same outcome, row for row."""
    gcs_client(gcs_emulator).bucket(gcs_bucket).blob("in.data").upload_from_string(case.body)
    gcs = ConnectionSpec.model_validate({"gcs": {"bucket": gcs_bucket, "endpointUrl": gcs_emulator,
                                                 "auth": {"anonymous": True}}})
    on_gcs = request("unused", "http://unused", walkme.url, case, fmt).model_copy(update={"connection": gcs})
    check(case, run_sync(on_gcs, CREDENTIALS), walkme)


def test_missing_file_names_the_path(bucket: str, moto_server: str, walkme: FakeWalkMe) -> None:
    result = run_sync(request(bucket, moto_server, walkme.url, Case("x", b""), "csv"), CREDENTIALS)
    assert (result.result, result.reason) == ("Failed", "NotFound")
    assert "in.data" in result.message


def test_missing_bucket_names_the_bucket(moto_server: str, walkme: FakeWalkMe) -> None:
    result = run_sync(request("no-such-bucket-q", moto_server, walkme.url, Case("x", b""), "csv"), CREDENTIALS)
    assert result.result == "Failed" and "no-such-bucket-q" in result.message


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + len(JSONL_CASES) + 2 >= 50
