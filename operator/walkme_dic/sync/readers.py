"""Streaming readers: CSV and JSON lines, gzip detected, rows numbered, bad rows rejected (not fatal)."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError

GZIP_MAGIC = b"\x1f\x8b"
TEXT_BUFFER = 1024 * 1024
csv.field_size_limit(64 * 1024 * 1024)


class Row(NamedTuple):  # a tuple: built once per row, several times cheaper than a frozen dataclass
    number: int  # 1-based data row (CSV header excluded) or line (JSON lines)
    values: dict[str, Any]


class Rejected(NamedTuple):
    number: int
    reason: str


Record = Row | Rejected


class CountingReader(io.RawIOBase):
    """Counts the bytes read from the underlying stream (for the result's `bytes`)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.count = stream, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def decompressed(stream: io.BufferedReader, compression: str) -> BinaryIO:
    """The stream, gunzipped when it is gzip (by magic bytes for `auto`)."""
    if compression == "gzip" or (compression == "auto" and stream.peek(2)[:2] == GZIP_MAGIC):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream  # type: ignore[return-value]


def read_rows(stream: io.BufferedReader, settings: FileSettings, required: list[str]) -> Iterator[Record]:
    """Rows of a CSV or JSON-lines file; ``required`` columns must be in a CSV header."""
    binary = decompressed(stream, settings.compression)
    encoding = "utf-8-sig" if codecs.lookup(settings.encoding).name == "utf-8" else settings.encoding
    text = io.TextIOWrapper(binary, encoding=encoding, errors="strict", newline="")  # type: ignore[arg-type]
    reader = _csv_rows(text, settings, required) if settings.format == "csv" else _jsonl_rows(text)
    try:
        yield from reader
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise PermanentError(f"the gzip stream ended early or is corrupt ({error}); the file is truncated "
                             "or not gzip", reason="CorruptFile") from None
    except UnicodeError as error:
        where = (f"byte {error.start} of a read block: {error.reason}" if isinstance(error, UnicodeDecodeError)
                 else str(error))
        raise PermanentError(f"the file is not valid {settings.encoding} ({where}); set source.file.encoding to "
                             "the file's encoding (e.g. latin-1, cp1252, utf-16)", reason="BadEncoding") from None


def _csv_rows(text: io.TextIOWrapper, settings: FileSettings, required: list[str]) -> Iterator[Record]:
    reader = csv.reader(text, delimiter=settings.delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise PermanentError(f"the CSV header cannot be parsed: {error}", reason="BadHeader") from None
    header = checked_header([name.strip() for name in header])
    missing = [name for name in required if name not in header and name.split(".")[0] not in header]
    if missing:
        found = ", ".join(header) if len(header) > 1 else f"{header[0]!r} — is the delimiter right?"
        raise PermanentError(f"column {', '.join(repr(m) for m in missing)} of spec.mapping is not in the file "
                             f"header (found: {found})", reason="MissingColumn")
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Rejected(number, f"malformed CSV: {error}")
            continue
        if not cells:
            number -= 1
            continue
        if len(cells) != len(header):
            yield Rejected(number, f"has {len(cells)} fields, the header has {len(header)}")
            continue
        yield Row(number, dict(zip(header, cells, strict=True)))


def checked_header(header: list[str]) -> list[str]:
    """The header, when every column has a name of its own; otherwise an error naming the column."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise PermanentError(f"column {position} of the CSV header has no name; name it or remove the column",
                                 reason="BadHeader")
        if name in seen:
            raise PermanentError(f"column {name!r} appears twice in the CSV header (columns {seen[name]} and "
                                 f"{position}); rename one of them", reason="BadHeader")
        seen[name] = position
    return header


def _jsonl_rows(text: io.TextIOWrapper) -> Iterator[Record]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            yield Rejected(number, f"not valid JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(value, dict):
            yield Rejected(number, f"is a JSON {type(value).__name__}, not an object")
            continue
        yield Row(number, value)
