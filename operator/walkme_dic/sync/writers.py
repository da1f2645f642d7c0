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


class RecordEncoder:
    """Buffers encoded records and hands ~1 MiB chunks to the writer; counts bytes written."""

    def __init__(self, writer: AtomicWriter, settings: FileSettings, columns: list[str], *, gzip_output: bool) -> None:
        self.writer, self.settings, self.columns = writer, settings, columns
        self.text = io.StringIO()
        self.csv = csv.writer(self.text, delimiter=settings.delimiter, lineterminator="\n")
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip_output else None
        # incremental: a codec with a byte-order mark (utf-16, utf-8-sig) writes it once, not per chunk
        self.encoder = codecs.getincrementalencoder(settings.encoding)()
        self.bytes = 0
        if settings.format == "csv":
            self.csv.writerow(columns)

    def add_all(self, records: Iterable[dict[str, Any]]) -> None:
        """Encode the records a thousand at a time, handing ~1 MiB chunks to the writer."""
        pending = iter(records)
        while batch := list(islice(pending, 1000)):
            if self.settings.format == "csv":
                self.csv.writerows([record.get(column) for column in self.columns] for record in batch)
            else:
                self.text.writelines(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
                                     for record in batch)
            if self.text.tell() >= FLUSH_AT:
                self._flush()

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



