"""Exported files read back by consumers nobody here wrote (issue 25, item 6): DuckDB, pandas and pyarrow
beside Python's csv and json, on what a real run (the engine against the fake WalkMe and moto's S3) wrote,
in each format and compression. A hypothesis property writes random records and compares value by value;
fixed cases hold the table rows of the issue (booleans, one schema per JSON line, a character the file's
encoding lacks). README "Reading the exported files" shows the same reader calls."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import uuid
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import duckdb
import pandas
import pyarrow.csv
import pyarrow.json
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

FIELDS = [{"source": "name", "destination": "name"}, {"source": "count", "destination": "count", "type": "number"},
          {"source": "member", "destination": "member", "type": "boolean"},
          {"source": "joined", "destination": "joined", "type": "date"}]
COLUMNS = ["id", "name", "count", "member", "joined"]
FORMATS = [("csv", "none"), ("csv", "gzip"), ("jsonl", "none"), ("jsonl", "gzip")]


def export(walkme: FakeWalkMe, moto: str, bucket: str, records: list[dict[str, Any]], fmt: str, compression: str,
           *, encoding: str = "utf-8", manifest: bool = False, since: str = "2020-01-01T00:00:00Z",
           limit: int | None = None) -> tuple[SyncResult, bytes]:
    """One full export of ``records`` through the engine; the result and the object's bytes (unzipped)."""
    stamped = [{**r, "updatedAt": f"2026-11-20T08:00:{i % 60:02d}Z"} for i, r in enumerate(records)]
    walkme.datasets["users"] = []  # seed adds to what is there
    walkme.seed("users", stamped)
    path = f"out/{uuid.uuid4().hex[:8]}.{fmt}" + (".gz" if compression == "gzip" else "")
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "read-back"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
        "force": True,
        "spec": {"direction": "Outbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
                 "source": {"walkme": {"dataset": "users", "since": since}}, "maxRejectedRows": limit,
                 "destination": {"file": {"path": path, "format": fmt, "compression": compression,
                                          "encoding": encoding, "manifest": manifest}},
                 "mapping": {"key": {"source": "userId", "destination": "id"}, "fields": FIELDS}},
        "connection": {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "auth": {"secretRef": {"name": "w"}}}},
    })
    credentials = CredentialSet({"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    result = run_sync(request, credentials)
    data = s3_client(moto).get_object(Bucket=bucket, Key=path)["Body"].read() if result.result == "Succeeded" else b""
    return result, gzip.decompress(data) if compression == "gzip" and data else data


def readers(fmt: str, file: Path) -> dict[str, list[dict[str, Any]]]:
    """Each consumer's rows, as plain Python values (a CSV's cells as text: no reader's type guessing)."""
    if fmt == "csv":
        frame = pyarrow.csv.read_csv(file, convert_options=pyarrow.csv.ConvertOptions(
            column_types=dict.fromkeys(COLUMNS, pyarrow.string()), strings_can_be_null=True,
            null_values=[""]))  # its default also reads the text NULL, NA, nan… as null (found by this test)
        return {
            "csv": [{k: v or None for k, v in row.items()} for row in csv.DictReader(io.StringIO(file.read_text()))],
            "duckdb": duckdb.sql(f"SELECT * FROM read_csv('{file}', all_varchar = true)").df()
            .replace({float("nan"): None}).to_dict("records"),
            "pandas": pandas.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
            .astype(object).where(lambda f: f.notna(), None).to_dict("records"),
            "pyarrow": frame.to_pylist(),
        }
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    return {
        "json": lines,
        "duckdb": [dict(zip(COLUMNS, row, strict=True)) for row in duckdb.sql(
            f"SELECT {', '.join(COLUMNS)} FROM read_json('{file}', format = 'newline_delimited')").fetchall()],
        "pyarrow": pyarrow.json.read_json(file).select(COLUMNS).to_pylist(),
        "pandas": [{k: (None if v is None or v != v else v) for k, v in row.items()}
                   for row in pandas.read_json(file, lines=True, dtype=False).astype(object).to_dict("records")],
    }


def as_read(value: Any, fmt: str) -> Any:
    """What an exported value is once a consumer has it: CSV cells are text (booleans true/false)."""
    if value is None or fmt == "jsonl":
        return str(value) if isinstance(value, date) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A consumer's row with dates as ISO text (DuckDB reads a JSON date as a date, pyarrow as a timestamp at
    midnight) and whole floats as ints (pandas reads a number column with a null as floats)."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime) and value.time() == time(0):  # pyarrow's JSON reader: a date as a timestamp
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return int(value) if isinstance(value, float) and value.is_integer() else value

    return {key: plain(value) for key, value in row.items()}


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Zs")), min_size=1,
               max_size=12)
RECORDS = st.lists(st.fixed_dictionaries({
    "name": st.none() | TEXT,
    "count": st.none() | st.integers(-(2**53) + 1, 2**53 - 1),
    "member": st.none() | st.booleans(),
    "joined": st.none() | st.dates(date(1900, 1, 1), date(2100, 12, 31)),
}), min_size=1, max_size=8)


@pytest.mark.parametrize(("fmt", "compression"), FORMATS)
def test_every_consumer_reads_back_what_was_exported(fmt: str, compression: str, walkme: FakeWalkMe, moto_server: str,
                                                     bucket: str, tmp_path: Path) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(RECORDS)
    def check(records: list[dict[str, Any]]) -> None:
        source = [{"userId": f"u{i}", **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}}
                  for i, r in enumerate(records)]
        result, data = export(walkme, moto_server, bucket, source, fmt, compression)
        assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", len(records), 0), result
        file = tmp_path / f"read.{fmt}"
        file.write_bytes(data)
        expected = [{"id": f"u{i}", **{k: as_read(r[k], fmt) for k in COLUMNS[1:]}} for i, r in enumerate(records)]
        for consumer, rows in readers(fmt, file).items():
            assert [comparable(row) for row in rows] == expected, consumer

    check()


def test_csv_booleans_are_true_and_false(walkme: FakeWalkMe, moto_server: str, bucket: str) -> None:
    _, data = export(walkme, moto_server, bucket, [{"userId": "u1", "member": True}, {"userId": "u2", "member": False}],
                     "csv", "none")
    assert data.decode().splitlines() == ["id,name,count,member,joined", "u1,,,true,", "u2,,,false,"]


def test_every_json_line_has_every_column(walkme: FakeWalkMe, moto_server: str, bucket: str) -> None:
    """Issue 25: JSON lines left nulls out, so files (and lines) differed in schema and pa.concat_tables failed."""
    _, data = export(walkme, moto_server, bucket, [{"userId": "u1", "name": "Ann"}, {"userId": "u2", "count": 3}],
                     "jsonl", "none")
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert [list(line) for line in lines] == [COLUMNS, COLUMNS]
    assert lines[1] == {"id": "u2", "name": None, "count": 3, "member": None, "joined": None}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_character_the_encoding_lacks_rejects_its_record_only(fmt: str, walkme: FakeWalkMe, moto_server: str,
                                                                 bucket: str) -> None:
    """Issue 25: latin-1 and one U+2028 in a value made the whole run an InternalError."""
    records = [{"userId": "u1", "name": "Zoë"}, {"userId": "u2", "name": "line\u2028separator"},
               {"userId": "u3", "name": "Åsa"}]
    result, data = export(walkme, moto_server, bucket, records, fmt, "none", encoding="latin-1")
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", 2, 1), result
    assert result.reason == "RowsRejected"
    [rejected] = result.rejected
    assert "record 2" in rejected.reason and "U+2028 LINE SEPARATOR cannot be written in latin-1" in rejected.reason
    text = data.decode("latin-1")
    assert "Zoë" in text and "Åsa" in text and "separator" not in text


SNIPPET = re.compile(r"<!-- readme-snippet: (\w+) -->\n```python\n(.*?)```", re.S)


def test_the_readme_snippets_read_an_export_as_written(walkme: FakeWalkMe, moto_server: str, bucket: str,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"userId": "u1", "name": "NA", "count": 3, "member": True, "joined": "2026-11-20"},
               {"userId": "u2", "name": "Ann, Jr.", "member": False}]
    for fmt in ("csv", "jsonl"):
        result, data = export(walkme, moto_server, bucket, records, fmt, "none")
        assert result.result == "Succeeded", result
        (tmp_path / f"users.{fmt}").write_bytes(data)
    snippets = dict(SNIPPET.findall((Path(__file__).parents[2] / "README.md").read_text()))
    assert set(snippets) == {"duckdb", "pandas", "pyarrow"}
    monkeypatch.chdir(tmp_path)
    found: dict[str, dict[str, Any]] = {}
    for name, code in snippets.items():
        found[name] = {}
        exec(compile(code, f"README.md:{name}", "exec"), found[name])  # the README is ours: its snippets must run
    duck = found["duckdb"]
    assert [row[:2] for row in duck["csv_rows"]] == [("u1", "NA"), ("u2", "Ann, Jr.")]
    assert duck["json_rows"][1][:4] == ("u2", "Ann, Jr.", None, False)
    users = found["pandas"]["users"]
    assert users["name"].tolist() == ["NA", "Ann, Jr."] and users["count"].isna().tolist() == [False, True]
    assert found["pandas"]["events"]["member"].tolist() == [True, False]
    assert found["pyarrow"]["table"].column("name").to_pylist() == ["NA", "Ann, Jr."]
    assert found["pyarrow"]["lines"].column("count").to_pylist() == [3, None]


def test_a_manifest_follows_the_data_and_says_what_it_holds(walkme: FakeWalkMe, moto_server: str,
                                                             bucket: str) -> None:
    """Issue 25: no completion marker, manifest, row count or run id; pipelines could not wait for "done"."""
    result, data = export(walkme, moto_server, bucket, [{"userId": "u1", "name": "Ann"}, {"userId": "u2"}],
                          "csv", "gzip", manifest=True)
    assert result.result == "Succeeded" and result.destination
    key = result.destination.split(f"s3://{bucket}/", 1)[1]
    s3 = s3_client(moto_server)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{key}.manifest.json")["Body"].read())
    assert manifest["object"] == result.destination and manifest["path"] == key
    assert (manifest["rows"], manifest["rejected"], manifest["columns"]) == (2, 0, COLUMNS)
    assert (manifest["format"], manifest["compression"], manifest["encoding"]) == ("csv", "gzip", "utf-8")
    assert manifest["bytes"] == s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    assert manifest["watermark"] == result.watermark and manifest["runId"].startswith("run-")
    assert len(data.decode().splitlines()) == 3
    without, _ = export(walkme, moto_server, bucket, [{"userId": "u1"}], "csv", "none")
    plain = without.destination.split(f"s3://{bucket}/", 1)[1]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=plain)["KeyCount"] == 1, "no manifest unless asked"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_an_incremental_export_with_a_rejected_row_fails_unless_a_limit_allows_it(
        fmt: str, walkme: FakeWalkMe, moto_server: str, bucket: str) -> None:
    """Issue 25: 4 of 6 rows with one bad cell dropped whole, the run Succeeded and the watermark moved past
    them, so no later run exported them. By default an incremental export now fails and writes nothing."""
    records = [{"userId": "u1", "count": 1}, {"userId": "u2", "count": "n/a"}, {"userId": "u3", "count": 3}]
    failed, data = export(walkme, moto_server, bucket, records, fmt, "none", since="lastRun")
    assert (failed.result, failed.reason, failed.watermark, data) == ("Failed", "TooManyRejectedRows", None, b"")
    assert "would never be exported" in failed.message and "record 2" in failed.message
    allowed, data = export(walkme, moto_server, bucket, records, fmt, "none", since="lastRun", limit=1)
    assert (allowed.result, allowed.reason, allowed.rows_written) == ("Succeeded", "RowsRejected", 2)
    snapshot, _ = export(walkme, moto_server, bucket, records, fmt, "none")  # a fixed since: the next run reads it
    assert (snapshot.result, snapshot.reason) == ("Succeeded", "RowsRejected")
