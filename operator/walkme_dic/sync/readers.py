"""Streaming readers: CSV and JSON lines, gzip detected, rows numbered, bad rows rejected (not fatal).

Rows come in blocks of up to BLOCK_ROWS (a few hundred KiB of CSV), so that reading, like mapping
(sync/columns.py), costs per block rather than per row where it can.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, BinaryIO, NamedTuple

from walkme_dic import reasons
from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError

GZIP_MAGIC = b"\x1f\x8b"
TEXT_BUFFER = 1024 * 1024
BLOCK_ROWS = 2048
csv.field_size_limit(64 * 1024 * 1024)


class Rejected(NamedTuple):
    number: int  # 1-based data row (CSV header excluded) or line (JSON lines)
    reason: str


class Block(NamedTuple):
    """Consecutive rows of a source: those read (CSV: cells in ``header`` order; JSON lines and queries:
    objects, ``header`` None), their row ``numbers``, and the rows ``rejected`` among them."""

    header: list[str] | None
    numbers: list[int]
    rows: list[Any]
    rejected: list[Rejected]

    @property
    def size(self) -> int:
        """Rows of the source the block covers (blank lines aside)."""
        return len(self.numbers) + len(self.rejected)


def blocks_of(objects: Iterable[dict[str, Any]]) -> Iterator[Block]:
    """Objects (a query's records) in blocks, numbered from 1."""
    iterator = iter(objects)
    return numbered(iter(lambda: list(islice(iterator, BLOCK_ROWS)), []))


def numbered(batches: Iterable[list[dict[str, Any]]]) -> Iterator[Block]:
    """Batches of objects (pages of an export) as blocks, numbered on from 1."""
    number = 0
    for rows in batches:
        yield Block(None, list(range(number + 1, number + 1 + len(rows))), rows, [])
        number += len(rows)


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


def read_blocks(stream: io.BufferedReader, settings: FileSettings, required: list[str]) -> Iterator[Block]:
    """Rows of a CSV or JSON-lines file in blocks; ``required`` columns must be in a CSV header."""
    binary = decompressed(stream, settings.compression)
    encoding = "utf-8-sig" if codecs.lookup(settings.encoding).name == "utf-8" else settings.encoding
    text = io.TextIOWrapper(binary, encoding=encoding, errors="strict", newline="")  # type: ignore[arg-type]
    reader = _csv_blocks(text, settings, required) if settings.format == "csv" else _jsonl_blocks(text)
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


def _csv_blocks(text: io.TextIOWrapper, settings: FileSettings, required: list[str]) -> Iterator[Block]:
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
    width, number = len(header), 0
    while True:
        rows: list[list[str]] = []
        malformed = None
        first_line = reader.line_num + 1  # physical lines of the file, the header's included
        try:  # list.extend keeps the rows read before a malformed one raises
            rows.extend(islice(reader, BLOCK_ROWS))
        except csv.Error as error:
            malformed = error
        if not rows and malformed is None:
            return
        if set(map(len, rows)) == {width}:  # the common case: every row whole, numbered consecutively
            block = Block(header, list(range(number + 1, number + 1 + len(rows))), rows, [])
            number += len(rows)
        else:
            block, number = _sorted_out(header, rows, number, first_line)
        if malformed is not None:
            opened = first_line + sum(map(_lines_of, rows))
            if reader.line_num > opened:
                raise _unbalanced_quote(opened, reader.line_num)
            number += 1
            block.rejected.append(Rejected(number, f"malformed CSV: {malformed}"))
        yield block


def _lines_of(cells: list[str]) -> int:
    """Physical lines a parsed row took: one, and one more per line end inside its quoted cells."""
    return 1 + sum(cell.count("\n") + cell.count("\r") - cell.count("\r\n") for cell in cells)


def _unbalanced_quote(opened: int, last: int) -> PermanentError:
    """A quote that opens a field and does not close where a row ends: the rows after it cannot be told apart
    (they would be read as one cell), so the run stops before anything is sent rather than import around them."""
    return PermanentError(
        f"line {opened} of the file opens a quoted field that does not close where a row ends: lines "
        f"{opened}-{last} would be read as one row, so nothing was imported. Inside a quoted field a quote is "
        'written twice (""); a field with a quote in it is quoted as a whole', reason=reasons.UNBALANCED_QUOTE)


def _sorted_out(header: list[str], rows: list[list[str]], number: int, line: int) -> tuple[Block, int]:
    """A block of rows some of which are blank (skipped, not numbered) or have the wrong number of fields;
    ``line`` is the physical line the first row starts on. A wrong row over several lines is a quote that
    swallowed line ends (see _unbalanced_quote), not one ragged row."""
    block = Block(header, [], [], [])
    for cells in rows:
        lines = _lines_of(cells)
        line += lines
        if not cells:
            continue
        number += 1
        if len(cells) == len(header):
            block.numbers.append(number)
            block.rows.append(cells)
        elif lines > 1:
            raise _unbalanced_quote(line - lines, line - 1)
        else:
            block.rejected.append(Rejected(number, f"has {len(cells)} fields, the header has {len(header)}"))
    return block, number


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


def _jsonl_blocks(text: io.TextIOWrapper) -> Iterator[Block]:
    block = Block(None, [], [], [])
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            block.rejected.append(Rejected(number, f"not valid JSON: {error.msg} at column {error.colno}"))
        else:
            if isinstance(value, dict):
                block.numbers.append(number)
                block.rows.append(value)
            else:
                block.rejected.append(Rejected(number, f"is a JSON {type(value).__name__}, not an object"))
        if block.size >= BLOCK_ROWS:
            yield block
            block = Block(None, [], [], [])
    if block.size:
        yield block
