"""Encoding records as CSV or JSON lines (optionally gzip) into an AtomicWriter; path templates."""

from __future__ import annotations

import codecs
import csv
import io
import json
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from walkme_dic.api.integration import FileSettings
from walkme_dic.connectors.base import AtomicWriter

FLUSH_AT = 1024 * 1024


def render_path(template: str, *, run_id: str, slot: str | None, now: datetime) -> str:
    """{date} {time} {runId} {slot}: the same run (same slot or run id) always renders the same path."""
    moment = datetime.fromisoformat(slot.replace("Z", "+00:00")) if slot else now.astimezone(UTC)
    return (template.replace("{date}", moment.strftime("%Y-%m-%d"))
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


class RecordEncoder:
    """Buffers encoded records and hands ~1 MiB chunks to the writer; counts bytes written."""

    def __init__(self, writer: AtomicWriter, settings: FileSettings, columns: list[str], *, gzip_output: bool) -> None:
        self.writer, self.settings, self.columns = writer, settings, columns
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
            self.text.writelines(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
                                 for record in batch)
            if self.text.tell() >= FLUSH_AT:
                self._flush()

    def add_columns(self, columns: list[list[Any]]) -> None:
        """CSV rows given column by column, in :attr:`columns` order (None for an empty cell)."""
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



