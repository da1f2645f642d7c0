"""Streaming readers: CSV and JSON lines, gzip detected, rows numbered, bad rows rejected (not fatal).

Rows come in blocks of up to BLOCK_ROWS (a few hundred KiB of CSV), so that reading, like mapping
(sync/columns.py), costs per block rather than per row where it can.

Text is decoded here (:class:`Lines`), a chunk at a time by the codec's incremental decoder, and split
into physical lines at ``\n``, ``\r\n`` and ``\r`` (what the csv module and ``newline=""`` do), so that
every line is counted and every byte's place in the file is known. A byte the declared encoding
refuses **fails the run** before anything is sent, naming its line and its byte offset in the
(uncompressed) file: such a byte nearly always means the file is in another encoding than declared
(a cp1252 export read as utf-8), so every row with a non-ASCII letter is damaged, not one; rejecting
those rows would import the ASCII ones and hide the cause, and a multi-byte decoder cannot tell
where the damage ends. The fix is one setting (``source.file.encoding``), named in the message.

**Row numbers are lines.** A row of a file, CSV or JSON lines, is numbered by the physical line of the
file it starts on: line 1 is a CSV file's header (a JSON-lines file's first line), blank lines count,
and a row whose quoted cell holds line ends is numbered by its first line, the lines after it counting
on. So "line 7" in a rejection is what ``sed -n 7p`` or an editor's line 7 shows (the file uncompressed,
its line ends ``\n``, ``\r\n`` or ``\r``). A query's records (and an outbound export's) are numbered
from 1 and called records. Lines are accounted for: see :class:`LineCount`.

A CSV row may span at most MAX_ROW_LINES lines: a quote that opens a field and closes rows later, at
the end of a field, reads as a valid row with one big cell that swallowed the rows between; past the
limit that is refused as an unbalanced quote naming the line it opened on. Within the limit a stray
quote closed by a second stray quote cannot be told from a cell that holds line ends.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any, BinaryIO, NamedTuple

from walkme_dic import reasons
from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError

GZIP_MAGIC = b"\x1f\x8b"
BOM = "\ufeff"
TEXT_CHUNK = 64 * 1024  # bytes decoded and split into lines at a time: a few thousand lines in memory
BLOCK_ROWS = 2048
MAX_ROW_LINES = 100  # physical lines one CSV row may span (line ends in its quoted cells)
JSON_WHITESPACE = " \t\r\n"
QUOTING = 'Inside a quoted field a quote is written twice (""); a field with a quote in it is quoted as a whole'
csv.field_size_limit(64 * 1024 * 1024)


class Rejected(NamedTuple):
    number: int  # the line of the file the row starts on (a query's or export's record number)
    reason: str


class Block(NamedTuple):
    """Consecutive rows of a source: those read (CSV: cells in ``header`` order; JSON lines and queries:
    objects, ``header`` None), their ``numbers`` (a file's: the line each starts on; records are numbered
    from 1), and the rows ``rejected`` among them."""

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


class Lines:
    """The physical lines of a binary stream decoded as ``encoding``, each with its line end, counted.

    A byte-order mark that starts the text is dropped, whatever the encoding: utf-8, and utf-16-le/-be or
    utf-32-le/-be, whose codecs keep it as a character (utf-16 and utf-32 drop it themselves). A second
    one is text, and a header cell that starts with it is named visibly (see :func:`shown`).

    ``count`` is the number of lines handed out so far: all of them once the iteration ends. A file that
    does not end with a line end still has its last line; an empty file has none.
    """

    def __init__(self, binary: BinaryIO, encoding: str, *, compressed: bool = False) -> None:
        self.binary, self.encoding, self.compressed = binary, encoding, compressed
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.count = 0
        self.offset = 0  # bytes read from the stream

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[str]]:
        pending = ""  # the start of a line the next chunk ends (or a "\r" a "\n" may follow)
        started = False
        while True:
            data = self.binary.read(TEXT_CHUNK)
            state = self.decoder.getstate()
            self.offset += len(data)
            try:
                text = self.decoder.decode(data, not data)
            except UnicodeDecodeError as error:
                raise self._refused(error, data, state, pending) from None
            if not started and text:
                started = True
                text = text.removeprefix(BOM)
            lines = io.StringIO(pending + text, newline="").readlines()
            pending = lines.pop() if data and lines and not lines[-1].endswith("\n") else ""
            self.count += len(lines)
            yield lines
            if not data:
                return

    def _refused(self, error: UnicodeDecodeError, data: bytes, state: tuple[bytes, int],
                 pending: str) -> PermanentError:
        """The error for a byte ``encoding`` refuses: its line, its offset in the file, and the setting to fix.

        The decoder's input is what it kept of the chunks before (``state``) followed by ``data``, so the bad
        byte is as far before the end of ``data`` as it is before the end of ``error.object``."""
        before = len(data) - (len(error.object) - error.start)  # bytes of ``data`` before the bad one
        offset = self.offset - len(data) + before
        decoder = codecs.getincrementaldecoder(self.encoding)("replace")
        decoder.setstate(state)
        text = pending + decoder.decode(data[:max(before, 0)])
        line = self.count + 1 + text.count("\n") + text.count("\r") - text.count("\r\n")
        bad = " ".join(f"0x{byte:02x}" for byte in error.object[error.start:error.end])
        where = "the uncompressed file" if self.compressed else "the file"
        return PermanentError(
            f"line {line} (byte {offset} of {where}, counted from 0) is not valid {self.encoding}: {error.reason} "
            f"({bad}); nothing was imported. Set source.file.encoding to the file's encoding (e.g. latin-1, "
            "cp1252, utf-16)", reason=reasons.BAD_ENCODING)


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
    if is_gzip(stream, compression):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream  # type: ignore[return-value]


def is_gzip(stream: io.BufferedReader, compression: str) -> bool:
    return compression == "gzip" or (compression == "auto" and stream.peek(2)[:2] == GZIP_MAGIC)


def read_blocks(stream: io.BufferedReader, settings: FileSettings, required: list[str]) -> FileReader:
    """Rows of a CSV or JSON-lines file in blocks; ``required`` columns must be in a CSV header."""
    return FileReader(stream, settings, required)


@dataclass
class LineCount:
    """Where the physical lines of a file went: each is the CSV header, a blank line, the first line of a
    row (read, then kept or rejected) or a further line of a row whose quoted cell holds line ends.

    ``read`` is counted where the text is split into lines (:class:`Lines`), the others where rows are told
    apart, so the file is accounted for when ``read == header + blank + rows + continued``
    (:attr:`unaccounted` is 0); the engine refuses to report a run whose file is not."""

    read: int = 0
    header: int = 0  # 1 for a CSV file's header (its further lines, if a quoted name holds a line end: continued)
    blank: int = 0  # CSV: empty lines; JSON lines: lines of JSON whitespace only
    rows: int = 0
    continued: int = 0  # a row over 3 lines adds 2

    @property
    def unaccounted(self) -> int:
        return self.read - self.header - self.blank - self.rows - self.continued


class FileReader:
    """The rows of a CSV or JSON-lines file in blocks (iterate it once); then ``lines`` says where every
    physical line of the file went."""

    def __init__(self, stream: io.BufferedReader, settings: FileSettings, required: list[str]) -> None:
        self.settings, self.required = settings, required
        self.text = Lines(decompressed(stream, settings.compression), settings.encoding,
                          compressed=is_gzip(stream, settings.compression))
        self.lines = LineCount()

    def __iter__(self) -> Iterator[Block]:
        settings, count = self.settings, self.lines
        reader = _csv_blocks(self.text, settings, self.required, count) if settings.format == "csv" else \
            _jsonl_blocks(self.text, count)
        try:
            yield from reader
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise PermanentError(f"the gzip stream ended early or is corrupt ({error}); the file is truncated "
                                 "or not gzip", reason=reasons.CORRUPT_FILE) from None
        except UnicodeError as error:  # not a decoding error (those are Lines'): a codec that fails otherwise
            raise PermanentError(f"the file is not valid {settings.encoding} ({error}); set source.file.encoding "
                                 "to the file's encoding (e.g. latin-1, cp1252, utf-16)",
                                 reason=reasons.BAD_ENCODING) from None
        count.read = self.text.count


def _csv_blocks(text: Lines, settings: FileSettings, required: list[str], count: LineCount) -> Iterator[Block]:
    reader = csv.reader(text, delimiter=settings.delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise PermanentError(f"the CSV header cannot be parsed: {error}", reason=reasons.BAD_HEADER) from None
    count.header, count.continued = 1, reader.line_num - 1
    header = checked_header([name.strip() for name in header])
    missing = [name for name in required if name not in header and name.split(".")[0] not in header]
    if missing:
        found = ", ".join(map(shown, header)) if len(header) > 1 else f"{shown(header[0], quoted=True)} — is the " \
            "delimiter right?"
        raise PermanentError(f"column {', '.join(repr(m) for m in missing)} of spec.mapping is not in the file "
                             f"header (found: {found})", reason=reasons.MISSING_COLUMN)
    width = len(header)
    while True:
        rows: list[list[str]] = []
        malformed = None
        line = reader.line_num + 1  # the physical line the block's first row starts on
        try:  # list.extend keeps the rows read before a malformed one raises
            rows.extend(islice(reader, BLOCK_ROWS))
        except csv.Error as error:
            malformed = error
        if not rows and malformed is None:
            return
        if reader.line_num - line + 1 == len(rows) + (malformed is not None) and set(map(len, rows)) == {width}:
            block = Block(header, list(range(line, line + len(rows))), rows, [])  # the common case: a whole row a line
            count.rows += len(rows)
            line += len(rows)
        else:
            block, line = _sorted_out(header, rows, line, count)
        if malformed is not None:
            if reader.line_num > line:
                raise _unbalanced_quote(line, reader.line_num)
            count.rows += 1
            block.rejected.append(Rejected(line, f"malformed CSV: {malformed}"))
        yield block


def _lines_of(cells: list[str]) -> int:
    """Physical lines a parsed row took: one, and one more per line end inside its quoted cells."""
    return 1 + sum(cell.count("\n") + cell.count("\r") - cell.count("\r\n") for cell in cells)


def _unbalanced_quote(opened: int, last: int) -> PermanentError:
    """A quote that opens a field and does not close where a row ends: the rows after it cannot be told apart
    (they would be read as one cell), so the run stops before anything is sent rather than import around them."""
    return PermanentError(
        f"line {opened} of the file opens a quoted field that does not close where a row ends: lines "
        f"{opened}-{last} would be read as one row, so nothing was imported. {QUOTING}",
        reason=reasons.UNBALANCED_QUOTE)


def _too_many_lines(opened: int, last: int) -> PermanentError:
    """A row over more than MAX_ROW_LINES lines: a stray quote closed by another one rows later, most likely."""
    return PermanentError(
        f"line {opened} of the file opens a quoted field that spans lines {opened}-{last}, more than the "
        f"{MAX_ROW_LINES} lines a row may span: the rows in between would be read as one cell, so nothing was "
        f"imported. {QUOTING}", reason=reasons.UNBALANCED_QUOTE)


def _sorted_out(header: list[str], rows: list[list[str]], line: int, count: LineCount) -> tuple[Block, int]:
    """A block of rows some of which are blank (counted, not numbered), span several lines or have the wrong
    number of fields; ``line`` is the physical line the first row starts on; returns the block and the line
    after it. A wrong row over several lines is a quote that swallowed line ends (see _unbalanced_quote), not
    one ragged row."""
    block = Block(header, [], [], [])
    for cells in rows:
        lines = _lines_of(cells)
        if not cells:
            count.blank += 1
        elif lines > MAX_ROW_LINES:
            raise _too_many_lines(line, line + lines - 1)
        elif len(cells) == len(header):
            block.numbers.append(line)
            block.rows.append(cells)
        elif lines > 1:
            raise _unbalanced_quote(line, line + lines - 1)
        else:
            block.rejected.append(Rejected(line, f"has {len(cells)} fields, the header has {len(header)}"))
        if cells:
            count.rows += 1
            count.continued += lines - 1
        line += lines
    return block, line


def checked_header(header: list[str]) -> list[str]:
    """The header, when every column has a name of its own; otherwise an error naming the column."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            raise PermanentError(f"column {position} of the CSV header has no name; name it or remove the column",
                                 reason=reasons.BAD_HEADER)
        if name in seen:
            raise PermanentError(f"column {shown(name, quoted=True)} appears twice in the CSV header (columns "
                                 f"{seen[name]} and {position}); rename one of them", reason=reasons.BAD_HEADER)
        seen[name] = position
    return header


def shown(name: str, *, quoted: bool = False) -> str:
    """A header name as a person can tell it apart: as it is (quoted if asked), or, when it holds characters
    nobody sees (a byte-order mark, a zero-width space, a control character), quoted with those escaped and
    named: ``'\\ufeffid' (holds U+FEFF ZERO WIDTH NO-BREAK SPACE)``."""
    if name.isprintable():
        return repr(name) if quoted else name
    hidden = dict.fromkeys(f"U+{ord(c):04X} {unicodedata.name(c, 'CONTROL CHARACTER')}" for c in name
                           if not c.isprintable())
    return f"{name!r} (holds {', '.join(hidden)})"


def _jsonl_blocks(text: Lines, count: LineCount) -> Iterator[Block]:
    block = Block(None, [], [], [])
    for number, line in enumerate(text, start=1):
        if not line.strip(JSON_WHITESPACE):
            count.blank += 1
            continue
        count.rows += 1
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
