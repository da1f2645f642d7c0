"""WalkMe's own data-out files as an outbound source (``source.walkme.dataset: exportFiles``).

WalkMe's Data Integration Center exports a custom report as CSV files into the customer's S3 bucket, Azure
container or GCS bucket; WalkMe publishes no API that serves the same data. This source lists that bucket
(the export Connection, ``exportFiles.connectionRef``, under ``exportFiles.prefix``) and reads every file it
has not read before, so that a run maps the new rows to any destination (Salesforce, a webhook, another store).

**Which files are new.** A file is identified by its path and fingerprint (S3 and Azure: the ETag; GCS: the
generation). The progress of an Integration is a time, ``status.watermark``, and the files read that were
modified at or after it, ``status.exportedFiles``: a listed file is new when it was modified at or after the
watermark and is not listed there with the same fingerprint. The bound is inclusive, so a file that lands with
the watermark's very timestamp is read, once. A file WalkMe replaces (same path, new ETag or generation) is
new again and read again: its rows go to the destination once more (Salesforce upserts them by external id; a
webhook receiver keys on the record key). A first run with ``since: lastRun`` reads every file under the
prefix; an RFC 3339 ``since`` reads, on every run, every file modified since then.

**When a file counts as read.** All new files of a run are one export, read oldest first (by last-modified
time, then path): their rows in that order, each file's header naming its columns. Only a run that succeeds
moves the progress on; a failed run marks no file read, and the next run reads them all again. A run with no
new file is Skipped (SourceUnchanged) and writes nothing.

**Late files.** A store stamps some objects before they become visible (S3 gives a multipart upload the time
it began). The new watermark therefore stays EXPORT_SETTLE before the newest file seen, and every file modified
since then is kept in ``exportedFiles``: a file that becomes visible up to that long after its timestamp is still
read (assumption A13 in docs/walkme-api.md). The list is bounded (KEPT_CHARACTERS) to fit a run's result in the
termination message; when it would not, the watermark moves up to the oldest files that fit, all of them read.

**Rows.** A record is numbered through the run from 1; a rejection names the file and the line its row
starts on (``walkme/usage-2.csv line 7: …``). A row whose fields do not match the header, like any damage a
machine-written CSV should not have, fails the run naming the file and line: nothing is marked read.
"""

from __future__ import annotations

import io
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

from walkme_dic import reasons
from walkme_dic.api.connection import EXPORT_FILE_PROVIDERS
from walkme_dic.api.integration import ExportedFile, ExportFilesSource, FileSettings
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.connectors.base import Credentials, ListingStore, ObjectInfo
from walkme_dic.connectors.records import Page, PagedRecords
from walkme_dic.connectors.registry import open_file_store
from walkme_dic.errors import PermanentError
from walkme_dic.sync.readers import Block, read_blocks

EXPORT_SETTLE = timedelta(hours=1)  # how long after its timestamp an export file may become visible (A13)
KEPT_CHARACTERS = 2048  # of paths and fingerprints in exportedFiles: a result stays within 4 KiB
CSV = FileSettings(path="export.csv", format="csv")  # how WalkMe writes its files (A14); the path is not used


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def modified(info: ObjectInfo) -> datetime:
    assert info.modified is not None, "a listed object has its last-modified time"
    return info.modified


def new_files(listed: list[ObjectInfo], watermark: str | None, done: list[ExportedFile]) -> list[ObjectInfo]:
    """The listed files to read, oldest first: modified at or after ``watermark`` and not ``done`` as they are."""
    since = parse(watermark) if watermark else None
    read = {(file.path, file.fingerprint) for file in done}
    fresh = [info for info in listed if (since is None or modified(info) >= since)
             and (info.path, info.fingerprint) not in read]
    return sorted(fresh, key=lambda info: (modified(info), info.path))


def progress(listed: list[ObjectInfo], watermark: str | None) -> tuple[str | None, list[ExportedFile]]:
    """The watermark and exportedFiles once every listed file modified at or after ``watermark`` is read."""
    if not listed:
        return watermark, []
    since = max(map(modified, listed)) - EXPORT_SETTLE
    if watermark and parse(watermark) > since:
        since = parse(watermark)
    kept = sorted((info for info in listed if modified(info) >= since), key=modified, reverse=True)
    size, end = 0, 0
    while end < len(kept):  # whole groups of one timestamp, newest first, while they fit
        group = [info for info in kept[end:] if modified(info) == modified(kept[end])]
        size += sum(len(info.path) + len(info.fingerprint) + 30 for info in group)
        if end and size > KEPT_CHARACTERS:
            since = modified(kept[end - 1])
            break
        end += len(group)
    files = [ExportedFile(path=info.path, fingerprint=info.fingerprint, modified=stamp(modified(info)))
             for info in sorted(kept[:end], key=lambda info: (modified(info), info.path))]
    return stamp(since), files


def open_export_store(request: SyncRequest, credentials: Credentials) -> ListingStore:
    connection = request.export_connection
    if connection is None or connection.provider not in EXPORT_FILE_PROVIDERS:
        found = f"a {connection.provider} Connection" if connection else "no Connection"
        raise PermanentError(f"spec.source.walkme.exportFiles.connectionRef: WalkMe exports into an "
                             f"{' or '.join(EXPORT_FILE_PROVIDERS)} Connection, the run got {found}",
                             reason=reasons.CONNECTION_TYPE_MISMATCH)
    return cast(ListingStore, open_file_store(connection, credentials))


class ExportFiles(PagedRecords):
    """The records of the new export files, page by page (a record source, so every destination takes it);
    ``watermark`` and ``exported`` are the progress a successful run records."""

    def __init__(self, source: ExportFilesSource, store: ListingStore, *, watermark: str | None,
                 done: list[ExportedFile], required: list[str]) -> None:
        super().__init__(self._pages)
        self.source, self.store, self.required = source, store, required
        listed = list(store.list(source.prefix))
        self.files = new_files(listed, watermark, done)
        self.next_watermark, self.exported = progress(listed, watermark)
        self.starts: list[int] = []  # the first record number of each file read so far
        self.lines = array("q")  # the line each record starts on, by record number - 1

    def describe(self) -> str:
        return f"{self.store.describe(self.source.prefix)}*"

    def label(self, number: int) -> str:
        file = bisect_right(self.starts, number) - 1
        if file < 0 or number > len(self.lines):
            return super().label(number)
        return f"{self.files[file].path} line {self.lines[number - 1]}"

    def unchanged(self) -> SyncResult:
        return SyncResult(result="Skipped", reason=reasons.SOURCE_UNCHANGED,
                          message=f"no new export file in {self.describe()} since the last run")

    def _pages(self) -> Iterator[Page]:
        for info in self.files:
            self.starts.append(len(self.lines) + 1)
            for block in self._blocks(info):
                if block.rejected:
                    line, why = block.rejected[0]
                    raise PermanentError(f"{info.path} line {line}: {why}; WalkMe writes its export files by "
                                         "machine, so the file is damaged: nothing was marked read",
                                         reason=reasons.CORRUPT_FILE)
                assert block.header is not None
                self.lines.extend(block.numbers)
                yield {"data": [dict(zip(block.header, row, strict=True)) for row in block.rows],
                       "watermark": self.next_watermark}

    def _blocks(self, info: ObjectInfo) -> Iterator[Block]:
        try:
            yield from read_blocks(cast(io.BufferedReader, self.store.open_read(info.path)), CSV, self.required)
        except PermanentError as error:
            error.message = f"{info.path}: {error.message}"
            raise
