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
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas
import pyarrow.csv
import pyarrow.json
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.integration import FileSettings
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

FIELDS = [{"source": "name", "destination": "name"}, {"source": "count", "destination": "count", "type": "number"},
          {"source": "member", "destination": "member", "type": "boolean"},
          {"source": "joined", "destination": "joined", "type": "date"}]
COLUMNS = ["id", "name", "count", "member", "joined"]
MORE_FIELDS = [{"source": "amount", "destination": "amount", "type": "number"},
               {"source": "tags", "destination": "tags"}]  # a decimal given as text; an object or array as text
MORE_COLUMNS = [*COLUMNS, "amount", "tags"]
NULL_TOKEN = "\\N"
FORMATS = [("csv", "none", ""), ("csv", "gzip", NULL_TOKEN), ("csv", "none", NULL_TOKEN), ("jsonl", "none", ""),
           ("jsonl", "gzip", "")]


def export(walkme: FakeWalkMe, moto: str, bucket: str, records: list[dict[str, Any]], fmt: str, compression: str,
           *, encoding: str = "utf-8", manifest: bool = False, since: str = "2020-01-01T00:00:00Z",
           limit: int | None = None, null_value: str = "", fields: list[dict[str, str]] = FIELDS,
           watermark: str | None = None, lookback: int | None = None, path: str | None = None,
           ) -> tuple[SyncResult, bytes]:
    """One export of ``records`` (stamped in order unless they carry an updatedAt) through the engine; the result
    and the object's bytes (unzipped)."""
    stamped = [{"updatedAt": f"2026-11-20T08:00:{i % 60:02d}Z", **r} for i, r in enumerate(records)]
    walkme.datasets["users"] = []  # seed adds to what is there
    walkme.seed("users", stamped)
    path = path or f"out/{uuid.uuid4().hex[:8]}.{fmt}" + (".gz" if compression == "gzip" else "")
    request = SyncRequest.model_validate({
        "integration": {"namespace": "ns", "name": "read-back"}, "runId": f"run-{uuid.uuid4().hex[:6]}",
        "force": True,
        "spec": {"direction": "Outbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
                 "source": {"walkme": {"dataset": "users", "since": since, "incrementalLookbackSeconds": lookback}},
                 "maxRejectedRows": limit,
                 "destination": {"file": {"path": path, "format": fmt, "compression": compression,
                                          "encoding": encoding, "manifest": manifest, "nullValue": null_value}},
                 "mapping": {"key": {"source": "userId", "destination": "id"}, "fields": fields}},
        "connection": {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto}},
        "walkmeConnection": {"walkme": {"apiUrl": walkme.url, "insightsExportUrl": walkme.url,
                                        "auth": {"secretRef": {"name": "w"}}}},
        "state": {"watermark": watermark},
    })
    credentials = CredentialSet({"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    result = run_sync(request, credentials)
    written = (result.destination or "").removeprefix(f"s3://{bucket}/")  # the path rendered
    data = s3_client(moto).get_object(Bucket=bucket, Key=written)["Body"].read() if result.result == "Succeeded" \
        else b""
    return result, gzip.decompress(data) if compression == "gzip" and data else data


def readers(fmt: str, file: Path, columns: list[str] = COLUMNS, null: str = "") -> dict[str, list[dict[str, Any]]]:
    """Each consumer's rows, as plain Python values (a CSV's cells as text: no reader's type guessing; ``null``:
    the file's nullValue, told to each reader)."""
    if fmt == "csv":
        frame = pyarrow.csv.read_csv(file, convert_options=pyarrow.csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pyarrow.string()), strings_can_be_null=True,
            null_values=[null]))  # its default also reads the text NULL, NA, nan… as null (found by this test)
        text = file.read_text()
        return {
            "csv": [{k: None if v == null else v for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))],
            "duckdb": duckdb.sql(f"SELECT * FROM read_csv('{file}', all_varchar = true, nullstr = '{null}')").df()
            .replace({float("nan"): None}).to_dict("records"),
            "pandas": pandas.read_csv(file, dtype=str, keep_default_na=False, na_values=[null])
            .astype(object).where(lambda f: f.notna(), None).to_dict("records"),
            "pyarrow": frame.to_pylist(),
        }
    lines = [json.loads(line, parse_float=Decimal) for line in file.read_text().splitlines()]
    return {
        "json": lines,  # exact: a decimal as its digits
        "duckdb": [dict(zip(columns, row, strict=True)) for row in duckdb.sql(
            f"SELECT {', '.join(columns)} FROM read_json('{file}', format = 'newline_delimited')").fetchall()],
        "pyarrow": pyarrow.json.read_json(file).select(columns).to_pylist(),
        # pandas' own JSON parser reads a number column with a null as floats (2**53 + 1 rounds): its pyarrow
        # engine keeps integers exact
        "pandas": pandas.read_json(file, lines=True, engine="pyarrow", dtype_backend="pyarrow")[columns]
        .astype(object).where(lambda f: f.notna(), None).to_dict("records"),
    }


def as_read(value: Any, fmt: str, null: str = "") -> Any:
    """What an exported value is once a consumer has it: CSV cells are text (booleans true/false; an empty text
    reads as null unless the file has a null token), an object or array is its JSON text, a decimal given as
    text is its digits (JSON lines: a number)."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if fmt == "jsonl":
        return str(value) if isinstance(value, date) else Decimal(value) if isinstance(value, Digits) else value
    if value is None or (value == "" and not null):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Digits(str):
    """A number given as text (a type number field's value in the export): "1.50"."""


def comparable(row: dict[str, Any], *, exact: bool) -> dict[str, Any]:
    """A consumer's row with dates as ISO text (DuckDB reads a JSON date as a date, pyarrow as a timestamp at
    midnight) and whole floats as ints (pandas reads a number column with a null as floats); but for an ``exact``
    consumer (json with parse_float=Decimal) a decimal is a double as the others read it."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime) and value.time() == time(0):  # pyarrow's JSON reader: a date as a timestamp
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal) and not exact:
            value = float(value)
        return int(value) if isinstance(value, float) and value.is_integer() else value

    return {key: plain(value) for key, value in row.items()}


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp", "Zs")), min_size=1,
               max_size=12).filter(lambda text: text != NULL_TOKEN)
PADDED = st.builds(lambda text, left, right: " " * left + text + " " * right, TEXT, st.integers(0, 2),
                   st.integers(0, 2))
NESTED = st.lists(TEXT, max_size=3) | st.dictionaries(TEXT, st.none() | st.integers() | TEXT, max_size=2)
RECORDS = st.lists(st.fixed_dictionaries({
    "name": st.none() | st.just("") | st.just("   ") | PADDED,
    "count": st.none() | st.integers(-(2**63) + 1, 2**63 - 1) | st.sampled_from([2**53 + 1, -(2**53) - 1]),
    "member": st.none() | st.booleans(),
    "joined": st.none() | st.dates(date(1900, 1, 1), date(2100, 12, 31)),
    "amount": st.none() | st.decimals(-10**9, 10**9, places=2).map(Digits) | st.just(Digits("1.50")),
    "tags": st.none() | NESTED,
}), min_size=1, max_size=8)


@pytest.mark.parametrize(("fmt", "compression", "null"), FORMATS)
def test_every_consumer_reads_back_what_was_exported(fmt: str, compression: str, null: str, walkme: FakeWalkMe,
                                                     moto_server: str, bucket: str, tmp_path: Path) -> None:
    """Values as they are (issue 25, item 4): integers beyond 2**53, decimals given as text ("1.50"), text
    untrimmed, an empty text apart from null (CSV: with a null token), an object or array as its JSON text."""
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(RECORDS)
    def check(records: list[dict[str, Any]]) -> None:
        source = [{"userId": f"u{i}", **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in r.items()}}
                  for i, r in enumerate(records)]
        result, data = export(walkme, moto_server, bucket, source, fmt, compression, null_value=null,
                              fields=FIELDS + MORE_FIELDS)
        assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", len(records), 0), result
        file = tmp_path / f"read.{fmt}"
        file.write_bytes(data)
        expected = [{"id": f"u{i}", **{k: as_read(r[k], fmt, null) for k in MORE_COLUMNS[1:]}}
                    for i, r in enumerate(records)]
        for consumer, rows in readers(fmt, file, MORE_COLUMNS, null).items():
            exact = consumer == "json"
            assert [comparable(row, exact=exact) for row in rows] == \
                [comparable(row, exact=exact) for row in expected], consumer

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


@pytest.mark.parametrize(("fmt", "content"), [("csv", b"id,name,count,member,joined\n"), ("jsonl", b"")])
def test_an_empty_run_writes_its_file_and_its_manifest_names_the_columns(fmt: str, content: bytes,
                                                                         walkme: FakeWalkMe, moto_server: str,
                                                                         bucket: str) -> None:
    """Issue 25: an empty run wrote a header-only CSV but a 0-byte JSON-lines file, and nothing said what either
    held. Both formats now write their file (README: "An empty run writes its file all the same"), and the
    manifest carries the schema a 0-byte JSON-lines file cannot."""
    result, data = export(walkme, moto_server, bucket, [], fmt, "none", manifest=True)
    assert (result.result, result.rows_written, data) == ("Succeeded", 0, content), result
    key = result.destination.split(f"s3://{bucket}/", 1)[1]
    manifest = json.loads(s3_client(moto_server).get_object(Bucket=bucket, Key=f"{key}.manifest.json")["Body"].read())
    assert (manifest["rows"], manifest["columns"], manifest["format"]) == (0, COLUMNS, fmt)


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


def test_values_leave_as_they_are(walkme: FakeWalkMe, moto_server: str, bucket: str) -> None:
    """Issue 25, row 4: 9007199254740993 was written 9007199254740992.0, "  padded  " trimmed, "", whitespace and
    null alike, a nested field as Python repr. Now: integers of any size (orjson reads one beyond 64 bits as a
    float: the client reads such a page with json), a decimal as its digits, text untrimmed, null apart from
    empty (CSV: the nullValue token), an object or array as its JSON text."""
    records = [{"userId": "u1", "name": "  padded  ", "count": 2**70 + 1, "amount": "1.50", "tags": {"a": [1, "é"]}},
               {"userId": "u2", "name": "", "count": 9007199254740993, "amount": "-0.10", "tags": []},
               {"userId": "u3", "name": None, "amount": "7"}]
    fields = FIELDS + MORE_FIELDS
    _, data = export(walkme, moto_server, bucket, records, "csv", "none", null_value=NULL_TOKEN, fields=fields)
    assert data.decode().splitlines() == [
        ",".join(MORE_COLUMNS), 'u1,  padded  ,1180591620717411303425,\\N,\\N,1.50,"{""a"":[1,""é""]}"',
        "u2,,9007199254740993,\\N,\\N,-0.10,[]", "u3,\\N,\\N,\\N,\\N,7,\\N"]
    _, data = export(walkme, moto_server, bucket, records, "csv", "none", fields=fields)
    assert data.decode().splitlines()[2:] == ["u2,,9007199254740993,,,-0.10,[]", "u3,,,,,7,"], \
        "without a token a null is an empty cell, as today"
    _, data = export(walkme, moto_server, bucket, records, "jsonl", "none", fields=fields)
    assert data.decode().splitlines() == [
        '{"id":"u1","name":"  padded  ","count":1180591620717411303425,"member":null,"joined":null,"amount":1.50,'
        '"tags":"{\\"a\\":[1,\\"é\\"]}"}',
        '{"id":"u2","name":"","count":9007199254740993,"member":null,"joined":null,"amount":-0.10,"tags":"[]"}',
        '{"id":"u3","name":null,"count":null,"member":null,"joined":null,"amount":7,"tags":null}']


def test_text_is_trimmed_only_where_a_field_asks(walkme: FakeWalkMe, moto_server: str, bucket: str) -> None:
    records = [{"userId": "u1", "name": "  Ann  ", "tags": "  gold "}, {"userId": "u2", "name": "   ", "tags": "  "}]
    fields = [{"source": "name", "destination": "name", "trim": True}, {"source": "tags", "destination": "tags"}]
    _, data = export(walkme, moto_server, bucket, records, "jsonl", "none", fields=fields)
    assert [json.loads(line) for line in data.decode().splitlines()] == [
        {"id": "u1", "name": "Ann", "tags": "  gold "}, {"id": "u2", "name": "", "tags": "  "}]


def test_a_value_that_is_the_null_token_rejects_its_record(walkme: FakeWalkMe, moto_server: str,
                                                           bucket: str) -> None:
    """With nullValue \\N a text \\N would read back as null: its record is rejected, saying so."""
    records = [{"userId": "u1", "name": "Ann"}, {"userId": "u2", "name": NULL_TOKEN}]
    result, data = export(walkme, moto_server, bucket, records, "csv", "none", null_value=NULL_TOKEN, limit=1)
    assert (result.result, result.rows_written, result.rows_rejected) == ("Succeeded", 1, 1), result
    assert "record 2" in result.rejected[0].reason and "nullValue" in result.rejected[0].reason
    assert data.decode().splitlines()[1:] == ["u1,Ann,\\N,\\N,\\N"]


@pytest.mark.parametrize("token", [",", 'a"b', "x\ny"])
def test_a_null_token_the_writer_would_quote_is_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="nullValue"):
        FileSettings.model_validate({"path": "out/users.csv", "nullValue": token})


def test_an_incremental_export_loses_nothing_at_the_watermark_nor_late_records(walkme: FakeWalkMe, moto_server: str,
                                                                               bucket: str) -> None:
    """Issue 25, row 2: since was strictly newer and the watermark the newest record's time, so a record stamped
    at the watermark that arrived after the run, and a late one with an older timestamp, were never exported.
    Now each run reads [watermark, a lookback before it began) and that end is the next watermark."""
    now = datetime.now(UTC)

    def user(name: str, age: timedelta) -> dict[str, Any]:
        return {"userId": name, "updatedAt": (now - age).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}

    settled, young = user("u-settled", timedelta(minutes=10)), user("u-young", timedelta(seconds=30))
    first, data = export(walkme, moto_server, bucket, [settled, young], "jsonl", "none", since="lastRun",
                         lookback=60)
    assert [json.loads(line)["id"] for line in data.decode().splitlines()] == ["u-settled"], "u-young: too young"
    assert first.watermark is not None and first.watermark < young["updatedAt"]
    twin = {**young, "userId": "u-twin"}  # stamped as u-young, arrives after the first run (main's watermark)
    late = user("u-late", timedelta(seconds=45))  # older than u-young, arrives after the first run: within 60 s
    at_mark = {"userId": "u-at-mark", "updatedAt": first.watermark}  # at the watermark, arrives after the run
    arrived = [settled, young, twin, late, at_mark]
    second, data = export(walkme, moto_server, bucket, arrived, "jsonl", "none", since="lastRun",
                          watermark=first.watermark, lookback=0)
    assert sorted(json.loads(line)["id"] for line in data.decode().splitlines()) == \
        ["u-at-mark", "u-late", "u-twin", "u-young"], "each once, u-settled not again"
    assert second.watermark is not None and second.watermark > first.watermark
    third, data = export(walkme, moto_server, bucket, arrived, "jsonl", "none", since="lastRun",
                         watermark=second.watermark, lookback=0)
    assert (third.result, third.rows_written, data) == ("Succeeded", 0, b""), "nothing twice"


def test_data_date_names_the_day_the_data_starts_at_not_the_run(walkme: FakeWalkMe, moto_server: str,
                                                               bucket: str) -> None:
    """Issue 25, row 8: dt={date} was the run's UTC date, not the data's. {dataDate} is the UTC day of the
    watermark a since: lastRun run exports from (a scheduler's data interval start), or of a fixed since."""
    after_midnight = datetime.now(UTC) - timedelta(days=3)
    watermark = after_midnight.replace(hour=0, minute=5, second=0, microsecond=0)
    evening = (watermark + timedelta(hours=26, minutes=25)).astimezone(timezone(timedelta(hours=-5)))  # 21:30 -05
    for since, state, day in (("lastRun", watermark.strftime("%Y-%m-%dT%H:%M:%S.000Z"), watermark.date()),
                              (evening.isoformat(), None, evening.date() + timedelta(days=1)),  # 02:30 UTC
                              ("lastRun", None, datetime.now(UTC).date())):  # from the beginning: the run's
        result, _ = export(walkme, moto_server, bucket, [{"userId": "u1"}], "csv", "none", since=since,
                           watermark=state, path="out/dt={dataDate}/users-{runId}.csv")
        assert result.result == "Succeeded", result
        assert re.fullmatch(rf"s3://{bucket}/out/dt={day.isoformat()}/users-run-[0-9a-f]{{6}}\.csv",
                            result.destination or ""), (since, result.destination)


def test_timestamps_are_written_in_utc(walkme: FakeWalkMe, moto_server: str, bucket: str, tmp_path: Path) -> None:
    """Issue 25, row 4 (zone rule): type timestamp writes RFC 3339 in UTC; an offset is converted, a time without
    one is taken as UTC. DuckDB reads the column as the same instants."""
    records = [{"userId": "u1", "seen": "2026-11-20T23:30:00-05:00"}, {"userId": "u2", "seen": "2026-11-20 10:00:00.5"},
               {"userId": "u3", "seen": "2026-11-20T10:00:00Z"}, {"userId": "u4"}]
    fields = [{"source": "seen", "destination": "seen", "type": "timestamp"}]
    _, data = export(walkme, moto_server, bucket, records, "jsonl", "none", fields=fields)
    assert [json.loads(line)["seen"] for line in data.decode().splitlines()] == \
        ["2026-11-21T04:30:00Z", "2026-11-20T10:00:00.500Z", "2026-11-20T10:00:00Z", None]
    (tmp_path / "seen.jsonl").write_bytes(data)
    seen = duckdb.sql(f"SELECT seen FROM read_json('{tmp_path / 'seen.jsonl'}')").fetchall()
    assert [row[0] for row in seen] == [datetime(2026, 11, 21, 4, 30, tzinfo=UTC),  # TIMESTAMPTZ: the Z says UTC
                                        datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=UTC),
                                        datetime(2026, 11, 20, 10, 0, tzinfo=UTC), None]
