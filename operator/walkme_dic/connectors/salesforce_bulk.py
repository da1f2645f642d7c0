"""Bulk API 2.0 ingest for SalesforceClient.write: CSV spooled to disk, one job per ≤ 100 MB.

Records stream into a temporary CSV file; when the next row would pass ``bulk_max_bytes``
(Salesforce accepts at most 100 MB of CSV per upload, and one upload per job) the file becomes
one job: create, PUT the file, PATCH UploadComplete, poll until JobComplete / Failed / Aborted,
then count successfulResults and read failedResults back. Failed rows are matched to their
input index by a digest of the row's values (Salesforce returns results in no particular order),
rescanning the spooled file, so memory holds only the failures, never the data.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import tempfile
import time
from array import array
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any

from walkme_dic.connectors.base import WriteReport
from walkme_dic.connectors.salesforce import error_reason
from walkme_dic.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from walkme_dic.connectors.salesforce import SalesforceClient

CSV_NULL = "#N/A"  # Bulk API 2.0: set the field to null (an empty cell leaves it unchanged)
FINISHED = ("JobComplete", "Failed", "Aborted")


class BulkIngest:
    def __init__(self, client: SalesforceClient, object_name: str, operation: str,
                 external_id_field: str | None) -> None:
        self.client = client
        self.object_name = object_name
        self.operation = operation
        self.external_id_field = external_id_field
        self.report = WriteReport()
        self.columns: list[str] = []

    def run(self, head: list[dict[str, object]], rest: Iterator[dict[str, object]]) -> WriteReport:
        """``head`` (the first rows, which fix the CSV columns) then ``rest``, in input order."""
        self.columns = list(dict.fromkeys(key for record in head for key in record))
        allowed = set(self.columns)
        chunk = _Chunk(self.columns)
        index = 0
        for source in (head, rest):
            for record in source:
                extra = [key for key in record if key not in allowed]
                if extra:
                    self.report.failed.append((index, f"{extra[0]}: not among the fields of the first "
                                                      f"{len(head)} records; every record must have the same fields"))
                else:
                    line = chunk.encode(record)
                    if chunk.rows and chunk.size + len(line) > self.client.bulk_max_bytes:
                        self._submit(chunk)
                        chunk = _Chunk(self.columns)
                    chunk.add(index, line)
                index += 1
        if chunk.rows:
            self._submit(chunk)
        self.report.failed.sort()
        return self.report

    # ---- one job -----------------------------------------------------------------------------

    def _submit(self, chunk: _Chunk) -> None:
        try:
            self._job(chunk)
        finally:
            chunk.file.close()

    def _job(self, chunk: _Chunk) -> None:
        client, base = self.client, f"{self.client.data_path}/jobs/ingest"
        what = f"Bulk API {self.operation} {self.object_name}"
        body: dict[str, Any] = {"object": self.object_name, "operation": self.operation, "contentType": "CSV",
                                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if self.operation == "upsert":
            body["externalIdFieldName"] = self.external_id_field
        job = client.request_json("POST", base, what, json=body)
        job_id = job["id"]
        try:
            client.request_json_or_empty("PUT", f"{base}/{job_id}/batches", what, data=chunk.file,
                                         headers={"Content-Type": "text/csv"})
            client.request_json("PATCH", f"{base}/{job_id}", what, json={"state": "UploadComplete"})
            job = self._wait(f"{base}/{job_id}", what)
        except BaseException:
            self._abort(f"{base}/{job_id}")
            raise
        if job["state"] != "JobComplete":
            raise PermanentError(
                f"{what}: job {job_id} ended {job['state']}: {job.get('errorMessage') or 'no reason given'} "
                f"({job.get('numberRecordsProcessed', 0)} of {len(chunk.rows)} records processed, "
                f"{job.get('numberRecordsFailed', 0)} failed)", reason="BulkJobFailed")
        self.report.written += self._count(f"{base}/{job_id}/successfulResults", what)
        self._failures(f"{base}/{job_id}/failedResults", what, chunk)

    def _wait(self, path: str, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.client.bulk_timeout
        delay = self.client.poll_interval
        while True:
            job = self.client.request_json("GET", path, what)
            if job.get("state") in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TransientError(f"{what}: job {job.get('id')} still {job.get('state')} after "
                                     f"{self.client.bulk_timeout:.0f}s; it was aborted")
            time.sleep(delay)
            delay = min(delay * 1.5, self.client.poll_interval * 10)

    def _abort(self, path: str) -> None:
        with contextlib.suppress(Exception):  # best effort; the original error matters more
            self.client.request_json_or_empty("PATCH", path, "abort", json={"state": "Aborted"})

    # ---- results -----------------------------------------------------------------------------

    def _rows(self, path: str, what: str) -> Iterator[dict[str, str]]:
        response = self.client._checked(self.client._send("GET", path, stream=True), what)
        with response:
            yield from csv.DictReader(_text_lines(response.iter_content(64 * 1024)))

    def _count(self, path: str, what: str) -> int:
        return sum(1 for _ in self._rows(path, what))

    def _failures(self, path: str, what: str, chunk: _Chunk) -> None:
        pending: dict[bytes, list[str]] = {}
        for row in self._rows(path, what):
            values = [row.get(column) or "" for column in self.columns]
            pending.setdefault(_digest(values), []).append(_reason(row.get("sf__Error") or ""))
        if not pending:
            return
        chunk.file.seek(0)
        reader = csv.reader(io.TextIOWrapper(chunk.file, encoding="utf-8", newline=""))
        next(reader, None)
        for position, values in enumerate(reader):
            reasons = pending.get(_digest(values))
            if reasons:
                self.report.failed.append((chunk.rows[position], reasons.pop(0)))
        for reasons in pending.values():  # rows Salesforce echoed differently than sent: index unknown
            self.report.failed.extend((-1, reason) for reason in reasons)


class _Chunk:
    """One job's CSV on disk, and the input index of each of its rows."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="walkme-dic-bulk-")  # noqa: SIM115
        self.rows = array("q")
        self.size = self.file.write(_line(columns))

    def encode(self, record: dict[str, object]) -> bytes:
        return _line([_csv_value(record[c]) if c in record else "" for c in self.columns])

    def add(self, index: int, line: bytes) -> None:
        self.size += self.file.write(line)
        self.rows.append(index)


def _text_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Lines with their endings, decoded incrementally (csv joins quoted fields that span lines)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        lines = pending.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def _csv_value(value: object) -> str:
    if value is None:
        return CSV_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _digest(values: list[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(values).encode(), digest_size=16).digest()


def _reason(sf_error: str) -> str:
    """Bulk API 2.0 ``sf__Error`` is ``STATUS_CODE:message:Field1,Field2 --``; we say 'Field: message'."""
    text = sf_error.removesuffix(" --").strip()
    code, _, rest = text.partition(":")
    message, _, fields = rest.rpartition(":")
    if not message:  # no field part
        message, fields = rest, ""
    names = [f for f in fields.split(",") if f and " " not in f]
    if fields and not names:  # the last colon was inside the message
        message, names = rest, []
    return error_reason(code, message.strip(), names)
