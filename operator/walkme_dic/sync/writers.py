"""Encoding records as CSV or JSON lines (optionally gzip) into an AtomicWriter; path templates."""

from __future__ import annotations

import codecs
import csv
import io
import json
import unicodedata
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from walkme_dic.api.integration import FileSettings
from walkme_dic.connectors.base import AtomicWriter

FLUSH_AT = 1024 * 1024


def render_path(template: str, *, run_id: str, slot: str | None, now: datetime, since: str | None = None) -> str:
    """{date} {time} {runId} {slot}: the run's (its schedule slot's time, else ``now``, in UTC); {dataDate}: the
    UTC day the run's data starts at, ``since`` (the watermark it exports from; a time without an offset is UTC),
    else {date}. The same run (same slot or run id, same watermark) always renders the same path."""
    moment = datetime.fromisoformat(slot.replace("Z", "+00:00")) if slot else now.astimezone(UTC)
    start = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else moment
    start = start.astimezone(UTC) if start.tzinfo else start
    return (template.replace("{date}", moment.strftime("%Y-%m-%d"))
            .replace("{dataDate}", start.strftime("%Y-%m-%d"))
            .replace("{time}", moment.strftime("%H%M%S"))
            .replace("{slot}", moment.strftime("%Y%m%dT%H%MZ") if slot else run_id)
            .replace("{runId}", run_id))


def wants_gzip(settings: FileSettings, path: str) -> bool:
    return settings.compression == "gzip" or (settings.compression == "auto" and path.endswith(".gz"))


def content_type(settings: FileSettings, *, gzip_output: bool) -> str:
    """The Content-Type an exported object is stored with: what it is, and the charset of its text."""
    if gzip_output:
        return "application/gzip"
    kind = "text/csv" if settings.format == "csv" else "application/x-ndjson"
    return f"{kind}; charset={settings.encoding}"


UNICODE_CODECS = ("utf_8", "utf_8_sig", "utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be")


def covers_unicode(encoding: str) -> bool:
    """Whether ``encoding`` writes every character (the UTF codecs); latin-1 or cp1252 lack most (U+2028, emoji)."""
    return codecs.lookup(encoding).name.replace("-", "_") in UNICODE_CODECS


def unencodable(texts: Iterable[str], encoding: str) -> str | None:
    """Why ``texts`` cannot be written in ``encoding`` (its first character outside it, by code point and name),
    or None."""
    if covers_unicode(encoding):
        return None
    for text in texts:
        try:
            text.encode(encoding)
        except UnicodeEncodeError as error:
            character = text[error.start]
            name = unicodedata.name(character, "a character")
            return (f"U+{ord(character):04X} {name} cannot be written in {encoding}; choose an encoding that holds "
                    "it (utf-8 holds every character)")
    return None


def json_line(record: dict[str, Any]) -> str:
    """A record as one line of JSON; a Decimal (a number given as text, sync/mapping.py) as its digits."""
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    except TypeError:  # a Decimal: json writes no number it did not make
        return "{" + ",".join(f"{json.dumps(name, ensure_ascii=False)}:"
                              f"{value if type(value) is Decimal else json.dumps(value, ensure_ascii=False)}"
                              for name, value in record.items()) + "}"


def csv_cell(value: Any) -> Any:
    """A value as the CSV writer gets it: booleans as JSON writes them (true, false), not Python's True."""
    return ("true" if value else "false") if type(value) is bool else value


class RecordEncoder:
    """Buffers encoded records and hands ~1 MiB chunks to the writer; counts bytes written.

    JSON lines carry every column, null where a record has no value, so that every line of every file has
    one schema (pyarrow and DuckDB infer it from the lines they see). CSV cells hold booleans as true/false, and
    a null as the file's nullValue (default: an empty cell, as for an empty text)."""

    def __init__(self, writer: AtomicWriter, settings: FileSettings, columns: list[str], *, gzip_output: bool) -> None:
        self.writer, self.settings, self.columns = writer, settings, columns
        self.template = dict.fromkeys(columns)
        self.text = io.StringIO()
        self.csv = csv.writer(self.text, delimiter=settings.delimiter, lineterminator="\n")
        self.quoted = (settings.delimiter, '"', "\r", "\n")  # a cell holding one of these the writer quotes
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip_output else None
        # incremental: a codec with a byte-order mark (utf-16, utf-8-sig) writes it once, not per chunk
        self.encoder = codecs.getincrementalencoder(settings.encoding)()
        self.bytes = 0
        if settings.format == "csv":
            self.csv.writerow(columns)

    def add_records(self, records: Iterable[dict[str, Any]]) -> None:
        """JSON lines, a thousand records at a time, handing ~1 MiB chunks to the writer."""
        pending = iter(records)
        while batch := list(islice(pending, 1000)):
            template = self.template
            self.text.writelines(json_line({**template, **record}) + "\n" for record in batch)
            if self.text.tell() >= FLUSH_AT:
                self._flush()

    def add_columns(self, columns: list[list[Any]]) -> None:
        """CSV rows given column by column, in :attr:`columns` order (None for a null: the nullValue token)."""
        columns = [list(map(csv_cell, column)) if bool in set(map(type, column)) else column for column in columns]
        if self.settings.null_value:
            token = self.settings.null_value
            columns = [[token if cell is None else cell for cell in column] if None in column else column
                       for column in columns]
        text = self._plain(columns)
        if text is None:
            self.csv.writerows(zip(*columns, strict=True))
        else:
            self.text.write(text)
        if self.text.tell() >= FLUSH_AT:
            self._flush()

    def _plain(self, columns: list[list[Any]]) -> str | None:
        """The rows as the csv writer writes them, when every cell is text (or None) that needs no quotes:
        the cells joined by the delimiter, a C join per block rather than the writer's look at each cell."""
        cells = [["" if cell is None else cell for cell in column] if None in column else column
                 for column in columns]
        if any(set(map(type, column)) - {str} for column in cells):
            return None
        text = "".join(map("".join, cells))
        if any(special in text for special in self.quoted):  # str's own search: a few GB/s, unlike a regex
            return None
        if len(cells) == 1 and not all(cells[0]):
            return None  # the writer quotes a row's only cell when it is empty
        rows = "\n".join(map(self.settings.delimiter.join, zip(*cells, strict=True)))
        return rows + "\n" if rows else ""

    def _flush(self) -> None:
        data = self.encoder.encode(self.text.getvalue())
        self.text.seek(0)
        self.text.truncate()
        if self.compressor is not None:
            data = self.compressor.compress(data)
        if data:
            self.writer.write(data)
            self.bytes += len(data)

    def finish(self) -> None:
        self._flush()
        if self.compressor is not None:
            tail = self.compressor.flush()
            self.writer.write(tail)
            self.bytes += len(tail)



