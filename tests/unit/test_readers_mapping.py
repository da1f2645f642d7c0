"""Readers and mapping: rows numbered, bad rows rejected with a reason, gzip and encodings (no server)."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from collections.abc import Iterator
from operator import attrgetter
from typing import Any, NamedTuple

import pytest

from walkme_dic.api.integration import FileSettings, Mapping
from walkme_dic.errors import PermanentError
from walkme_dic.sync.mapping import Mapper, RowError, coerce
from walkme_dic.sync.readers import Rejected, read_blocks

CSV = FileSettings(path="x.csv")
JSONL = FileSettings(path="x.jsonl", format="jsonl")


class Row(NamedTuple):
    number: int
    values: dict[str, Any]


def rows(data: bytes, settings: FileSettings = CSV, required: tuple[str, ...] = ()) -> list[Row | Rejected]:
    """The file's rows and rejections one by one, in file order, as its blocks hold them."""
    out: list[Row | Rejected] = []
    for block in read_blocks(io.BufferedReader(io.BytesIO(data)), settings, list(required)):
        out += [Row(number, values if block.header is None else dict(zip(block.header, values, strict=True)))
                for number, values in zip(block.numbers, block.rows, strict=True)]
        out += block.rejected
    return sorted(out, key=attrgetter("number"))


def test_csv_rows_are_numbered_by_the_line_they_start_on() -> None:
    out = rows(b"id,name\n1,Ann\n\n2,\"Bob\nBobson\"\r\n3,Cy")
    assert out == [Row(2, {"id": "1", "name": "Ann"}), Row(4, {"id": "2", "name": "Bob\nBobson"}),
                   Row(6, {"id": "3", "name": "Cy"})]


def test_csv_and_jsonl_number_a_row_after_a_blank_line_alike() -> None:
    """Before (issue 21): a bad row after a blank line was row 2 in a CSV file and line 3 in JSON lines."""
    csv_out = rows(b"id,name\n\n3\n", required=("id",))
    jsonl_out = rows(b'{"id": 1}\n\n[3]\n', JSONL)
    assert [r.number for r in csv_out] == [3] and [r.number for r in jsonl_out] == [1, 3]


def test_ragged_rows_are_rejected_not_fatal() -> None:
    out = rows(b"id,name\n1,Ann\n2\n3,Cy,extra\n4,Di\n")
    assert [type(r).__name__ for r in out] == ["Row", "Rejected", "Rejected", "Row"]
    assert out[1] == Rejected(3, "has 1 fields, the header has 2")


def test_gzip_bom_and_delimiter_are_handled() -> None:
    data = gzip.compress("\ufeffid;name\n1;Zoë\n".encode())
    assert rows(data, FileSettings(path="x.csv.gz", delimiter=";")) == [Row(2, {"id": "1", "name": "Zoë"})]


def test_latin1_is_read_when_asked() -> None:
    assert rows("id,name\n1,Zoë\n".encode("latin-1"), FileSettings(path="x", encoding="latin-1"))[0].values == \
        {"id": "1", "name": "Zoë"}


def test_invalid_utf8_fails_with_the_setting_to_change() -> None:
    with pytest.raises(PermanentError, match="encoding"):
        rows("id,name\n1,Zoë\n".encode("latin-1"))


def test_truncated_gzip_is_reported_as_truncated() -> None:
    data = gzip.compress(b"id\n" + b"1\n" * 10000)[:-40]
    with pytest.raises(PermanentError, match="truncated"):
        rows(data)


def test_missing_header_column_lists_what_was_found() -> None:
    with pytest.raises(PermanentError, match=r"'email'.*found: id, name, region"):
        rows(b"id,name,region\n1,a,b\n", required=("id", "email"))


def test_wrong_delimiter_hint() -> None:
    with pytest.raises(PermanentError, match="delimiter"):
        rows(b"id;name\n1;a\n", required=("id",))


def test_jsonl_broken_lines_are_rejected_with_their_line() -> None:
    out = rows(b'{"id": 1}\nnot json\n[1, 2]\n{"id": 2}\n', JSONL)
    assert [r.number for r in out if isinstance(r, Rejected)] == [2, 3]
    assert "not valid JSON" in out[1].reason  # type: ignore[union-attr]


@pytest.mark.parametrize(("value", "kind", "expected"), [
    ("42", "number", 42), ("4.5", "number", 4.5), ("yes", "boolean", True), ("FALSE", "boolean", False),
    ("2024-03-01T10:00:00Z", "date", "2024-03-01"), ("2024-03-01", "date", "2024-03-01"), (" x ", "string", "x"),
    ("", "number", None), (True, "string", "true"),
])
def test_coercions(value: object, kind: str, expected: object) -> None:
    assert coerce(value, kind, "c") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "kind"), [("1,5", "number"), ("maybe", "boolean"), ("03/01/2024", "date"),
                                             ("nan", "number")])
def test_bad_values_name_the_column(value: str, kind: str) -> None:
    with pytest.raises(RowError, match="column 'c'"):
        coerce(value, kind, "c")  # type: ignore[arg-type]


MAPPING = Mapping.model_validate({"key": {"source": "id", "destination": "uuid"},
                                  "fields": [{"source": "plan", "destination": "plan"},
                                             {"source": "seats", "destination": "seats", "type": "number"},
                                             {"source": "Account.Industry", "destination": "industry"}],
                                  "activeField": "active"})


def test_mapper_builds_the_walkme_record() -> None:
    record = Mapper(MAPPING, "uuid").map({"id": "7", "plan": "gold", "seats": "3", "active": "false",
                                          "Account": {"Industry": "Retail"}})
    assert record == {"uuid": "7", "plan": "gold", "seats": 3, "industry": "Retail", "active": "false"}


def test_empty_values_are_not_sent_but_key_and_active_are_required() -> None:
    mapper = Mapper(MAPPING, "uuid")
    assert mapper.map({"id": "7", "plan": "", "seats": "", "active": "true"}) == {"uuid": "7", "active": "true"}
    with pytest.raises(RowError, match="the key"):
        mapper.map({"id": " ", "active": "true"})
    with pytest.raises(RowError, match="active column"):
        mapper.map({"id": "7", "active": ""})


def synthetic_csv(count: int) -> Iterator[bytes]:
    yield b"id,plan,seats,active\n"
    for index in range(count):
        yield f"{index},gold,{index % 50},true\n".encode()


class GeneratedStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def test_reading_and_mapping_does_not_accumulate_memory() -> None:
    mapper = Mapper(Mapping.model_validate({"key": {"source": "id", "destination": "uuid"},
                                            "fields": [{"source": "seats", "destination": "s", "type": "number"}],
                                            "activeField": "active"}), "uuid")
    tracemalloc.start()
    count = 0
    stream = io.BufferedReader(GeneratedStream(synthetic_csv(200_000)))
    for block in read_blocks(stream, CSV, mapper.required_columns()):
        assert not block.rejected and block.header is not None
        for cells in block.rows:
            mapper.map(dict(zip(block.header, cells, strict=True)))
            count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 200_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a streaming read"


def test_a_timestamp_with_an_offset_is_the_day_it_is_in_utc() -> None:
    """Issue 25: type date took the value's own offset (…T23:30:00-05:00 → 2026-11-20, in UTC the 21st)."""
    assert coerce("2026-11-20T23:30:00-05:00", "date", "d") == "2026-11-21"
    assert coerce("2026-11-20T23:30:00Z", "date", "d") == "2026-11-20"
    assert coerce("2026-11-21T01:00:00+02:00", "date", "d") == "2026-11-20"
    assert coerce("2026-11-20T23:30:00", "date", "d") == "2026-11-20"  # no offset: the day it names
