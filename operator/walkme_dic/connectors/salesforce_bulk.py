"""Bulk API 2.0 ingest for SalesforceClient.write: CSV spooled to disk, one job per ``bulk_max_bytes``.

Records stream into a temporary CSV file; when the next row would pass ``bulk_max_bytes``
(Salesforce accepts at most 100 MB of CSV per upload, one upload per job; we cut at 10 MB, see
salesforce.BULK_JOB_BYTES) the file is handed to simple-salesforce's ``bulk2`` (create the job, PUT
the file, UploadComplete, poll to the end, abort on an error). The written count comes from the job's
numbers; failedResults are downloaded to a file and matched to their input index by a digest of the
row's values (Salesforce returns results in no particular order), rescanning the spooled file, so
memory holds only the failures, never the data.
simple-salesforce reads one job's file into memory to upload it (as rows, then as one string), so a
job costs several times its size in memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from array import array
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any

from walkme_dic.connectors.base import WriteReport
from walkme_dic.connectors.salesforce import error_reason

if TYPE_CHECKING:
    from walkme_dic.connectors.salesforce import SalesforceClient

CSV_NULL = "#N/A"  # Bulk API 2.0: set the field to null (an empty cell leaves it unchanged)


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
            chunk.file.flush()
            self._job(chunk)
        finally:
            chunk.file.close()

    def _job(self, chunk: _Chunk) -> None:
        """simple-salesforce creates the job, uploads the file, closes it and polls until it ends (aborting it
        on an error); a job that ends Failed or Aborted raises. Then the failed rows are read back."""
        what = f"Bulk API {self.operation} {self.object_name}"
        options: dict[str, Any] = {"csv_file": chunk.file.name, "wait": self.client.poll_interval}
        if self.operation == "upsert":
            options["external_id_field"] = self.external_id_field
        jobs = self.client.call(what, lambda sf: getattr(getattr(sf.bulk2, self.object_name), self.operation)(
            **options), relogin=False)
        for job in jobs:
            self.report.written += int(job["numberRecordsProcessed"]) - int(job["numberRecordsFailed"])
            if int(job["numberRecordsFailed"]):
                self._failures(str(job["job_id"]), what, chunk)

    # ---- results -----------------------------------------------------------------------------

    def _failures(self, job_id: str, what: str, chunk: _Chunk) -> None:
        pending: dict[bytes, list[str]] = {}
        with tempfile.NamedTemporaryFile(prefix="walkme-dic-failed-", suffix=".csv") as failed:
            self.client.call(what, lambda sf: getattr(sf.bulk2, self.object_name).get_failed_records(
                job_id, file=failed.name))
            with open(failed.name, encoding="utf-8-sig", newline="") as text:
                for row in csv.DictReader(text):
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
        self.file: IO[bytes] = tempfile.NamedTemporaryFile(prefix="walkme-dic-bulk-", suffix=".csv")  # noqa: SIM115
        self.rows = array("q")
        self.size = self.file.write(_line(columns))

    def encode(self, record: dict[str, object]) -> bytes:
        return _line([_csv_value(record[c]) if c in record else "" for c in self.columns])

    def add(self, index: int, line: bytes) -> None:
        self.size += self.file.write(line)
        self.rows.append(index)


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
