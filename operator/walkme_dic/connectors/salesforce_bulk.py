"""Bulk API 2.0 ingest for SalesforceClient.write: CSV spooled to disk, one job per ``bulk_max_bytes``.

Records stream into a temporary CSV file; when the next row would pass ``bulk_max_bytes`` (Salesforce
accepts at most 100 MB of CSV per upload, one upload per job; we cut at 10 MB, see
salesforce.BULK_JOB_BYTES) the file goes to one job, step by step through simple-salesforce's Bulk 2.0
client (``bulk2.<object>._client``: create the job, PUT the file, UploadComplete, poll to the end; abort
a job still Open on an error). Its one-call ``insert``/``upsert`` is not used because a step answered
502/504 may have run (salesforce.MaybeApplied) and each is checked before it is sent again: a created
job is looked up among the user's Open jobs of that object, operation, external id field and API version
created since (Bulk API 2.0 "Get All Jobs") and used only when it is the one candidate (jobs carry no
mark of the process that made them, so another process of the same user could have made one in that
second; an adopted job that already holds data is theirs, is left alone, and a new job is made), an
upload is sent again and Salesforce's refusal of a second upload ("Found multiple contents for job")
says the first landed, and a close is done when the job has left Open. simple-salesforce's one-call flow
would instead resend the close, get 400 and abort the running job. The written count comes from the
job's numbers; failedResults are downloaded to a file and matched to their input index by a digest of
the row's values (Salesforce returns results in no particular order), rescanning the spooled file, so
memory holds only the failures, never the data. Result files echo only the columns whose header is the
field's API name exactly, so the header is written by the API names of the object's describe (one call a
write) and the digest covers the columns the result file does echo; a result that still matches no row
is reported with index -1 and says so. One job's file is read into memory to upload it (one string), so
a job costs a few times its size.

Records a job refused for a passing reason (UNABLE_TO_LOCK_ROW, REQUEST_LIMIT_EXCEEDED: salesforce.
TRANSIENT_RECORD_ERRORS) and those a Failed job left unprocessed go once more, after a pause, into a new
job of their own (Salesforce: "create a new ingest job to process the records that weren't processed");
what that job refuses or leaves is reported, never sent a third time. Not resent: the records of a job that
failed on its data (InvalidBatch: the same file fails the same way) or was aborted (someone decided so).
Applied records are never sent again, so an insert does not duplicate.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import tempfile
import time
from array import array
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from walkme_dic.connectors.common import retry_delay
from walkme_dic.connectors.records import WriteReport
from walkme_dic.connectors.salesforce import (
    AMBIGUOUS_KEY,
    SENT_AGAIN,
    TRANSIENT_RECORD_ERRORS,
    MaybeApplied,
    error_reason,
)
from walkme_dic.errors import DicError, PartlyApplied

if TYPE_CHECKING:
    from walkme_dic.connectors.salesforce import SalesforceClient

# "Empty field values are ignored when you update records. To set a field value to null, use a field value of #N/A."
# (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_csv_valid_record_rows.htm)
CSV_NULL = "#N/A"
ENDED = ("JobComplete", "Failed", "Aborted")


class BulkIngest:
    def __init__(self, client: SalesforceClient, object_name: str, operation: str,
                 external_id_field: str | None) -> None:
        self.client = client
        self.object_name = object_name
        self.operation = operation
        self.external_id_field = external_id_field
        self.report = WriteReport()
        self.unprocessed = 0  # of report.failed: records a Failed or Aborted job did not process
        self.columns: list[str] = []  # the records' field names
        self.header: list[str] = []  # the same fields by their API names, as the CSV header says them

    def run(self, head: list[dict[str, object]], rest: Iterator[dict[str, object]],
            fields: Iterable[str] = ()) -> WriteReport:
        """``head`` (the first rows, which with ``fields`` fix the CSV columns) then ``rest``, in input order. A
        field a record lacks is an empty cell (left as it is), one it holds as None ``#N/A`` (cleared)."""
        self.columns = list(dict.fromkeys([*fields, *(key for record in head for key in record)]))
        self.header = self._api_names(self.columns)
        allowed = set(self.columns)
        chunk = _Chunk(self.columns, self.header)
        index = 0
        for source in (head, rest):
            for record in source:
                extra = [key for key in record if key not in allowed]
                literal = next((key for key, value in record.items() if value == CSV_NULL), None)
                if extra:
                    self.report.failed.append((index, f"{extra[0]}: not among the fields of the first "
                                                      f"{len(head)} records; every record must have the same fields"))
                elif literal:
                    self.report.failed.append((index, f"{literal}: the text {CSV_NULL} means 'clear this field' in a "
                                                      "Bulk API 2.0 file, so it cannot be written as a value"))
                else:
                    line = chunk.encode(record)
                    if chunk.rows and chunk.size + len(line) > self.client.bulk_max_bytes:
                        self._submit(chunk)
                        chunk = _Chunk(self.columns, self.header)
                    chunk.add(index, line)
                index += 1
        if chunk.rows:
            self._submit(chunk)
        self.report.failed.sort()
        return self.report

    # ---- one job -----------------------------------------------------------------------------

    def _submit(self, chunk: _Chunk, *, again: bool = False) -> None:
        try:
            chunk.file.flush()
            self._job(chunk, again=again)
        finally:
            chunk.file.close()

    def _job(self, chunk: _Chunk, *, again: bool) -> None:
        """One job for the chunk, step by step (module docstring), then its failed and unprocessed records read
        back. Records refused for a passing reason (a row lock) and those a Failed job left unprocessed go once
        more into a job of their own (``again``); what that job still refuses or leaves is reported. A job that
        ends Failed or Aborted with records left raises PartlyApplied."""
        what = f"Bulk API {self.operation} {self.object_name}"
        job_id, adopted = self._create(what, adopt=True)
        try:
            chunk.file.seek(0)
            data = chunk.file.read().decode()
            if not self._upload(job_id, data, what, adopted=adopted):
                job_id = None  # another process's job: never aborted by us
                job_id, _ = self._create(what, adopt=False)
                self._upload(job_id, data, what, adopted=False)
            self._close(job_id, what)
        except BaseException:
            with contextlib.suppress(DicError):
                if job_id is not None and self._info(job_id, what)["state"] == "Open":
                    self.client.call(what, lambda sf: self._bulk(sf).abort_job(job_id, False))
            raise
        job = self._wait(job_id, what)
        applied = int(job.get("numberRecordsProcessed") or 0) - int(job.get("numberRecordsFailed") or 0)
        self.report.written += applied
        resend: list[int] = []  # positions in the chunk to send once more
        if int(job.get("numberRecordsFailed") or 0):
            for position, sf_error in self._results(job_id, what, chunk, "failedResults"):
                code = sf_error.partition(":")[0].strip()
                reason = _reason(sf_error) + (AMBIGUOUS_KEY if code == "DUPLICATE_EXTERNAL_ID" else "")
                if code in TRANSIENT_RECORD_ERRORS and not again and position is not None:
                    resend.append(position)
                else:
                    self._refuse(chunk, position, reason + (SENT_AGAIN if again and code in TRANSIENT_RECORD_ERRORS
                                                            else ""))
        left: list[int | None] = []
        reason = str(job.get("errorMessage") or job["state"])
        if job["state"] != "JobComplete":
            # "the entire job is moved to the Failed state and remaining job data isn't processed. If there's a
            # failure, create a new ingest job to process the records that weren't processed"
            # (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_understanding_bulk2_ingest.htm)
            left = [position for position, _ in self._results(job_id, what, chunk, "unprocessedrecords")]
            if not again and _worth_resending(job):
                resend.extend(position for position in left if position is not None)
                left = [position for position in left if position is None]
        for position in left:
            self._refuse(chunk, position, f"not processed: the Bulk job {job_id} ended {job['state']} ({reason})"
                         + (" when its records were sent a second time" if again else ""))
        self.unprocessed += len(left)
        if resend:
            time.sleep(retry_delay(1, self.client.adapter.base_delay, None))
            self._submit(chunk.subset(sorted(resend)), again=True)
        if left or (job["state"] != "JobComplete" and not resend):
            raise PartlyApplied(f"{what}: the job did not complete: {reason}", self.report,
                                unprocessed=self.unprocessed)

    def _refuse(self, chunk: _Chunk, position: int | None, reason: str) -> None:
        if position is None:
            reason += " (Salesforce's result row matches no record sent, so which one is unknown)"
        self.report.failed.append((chunk.rows[position] if position is not None else -1, reason))

    def _api_names(self, columns: list[str]) -> list[str]:
        """Each column by the API name the object's describe gives it. "Each field-name header in the file must be
        the same as the field's Field Name (for standard fields) or API Name (for custom fields). Results only
        include columns that are a match." (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/
        api_asynch/datafiles_prepare_csv.htm): a failure sent as ``lastname`` would come back without the values
        that say which record it was. A name describe does not list (a relationship such as
        ``Account.External__c``) is kept as it is."""
        describe = self.client.describe(self.object_name)
        names = {str(f.get("name", "")).lower(): str(f["name"]) for f in describe.get("fields", []) if f.get("name")}
        return [names.get(column.lower(), column) for column in columns]

    def _bulk(self, sf: Salesforce) -> Any:
        return getattr(sf.bulk2, self.object_name)._client

    def _info(self, job_id: str, what: str) -> dict[str, Any]:
        return dict(self.client.call(what, lambda sf: self._bulk(sf).get_job(job_id, False)))

    def _create(self, what: str, *, adopt: bool) -> tuple[str, bool]:
        """A new job's id, and whether it is one found after a create that may have run (``adopt``) rather than
        the create's own answer. Without ``adopt`` a create that may have run is simply sent again: at worst an
        empty Open job is left behind, which holds no data."""
        for attempt in range(1, self.client.adapter.attempts + 1):
            since = self.client.adapter.server_time
            try:
                job = self.client.call(what, lambda sf: self._bulk(sf).create_job(
                    self.operation, external_id_field=self.external_id_field))
                return str(job["id"]), False
            except MaybeApplied:
                if attempt == self.client.adapter.attempts:
                    raise
                adopted = self._created_since(since, what) if adopt else None
                if adopted:
                    return adopted, True
        raise AssertionError("unreachable")

    def _created_since(self, since: datetime | None, what: str) -> str | None:
        """The Open job the lost create made, if it is the only candidate: created by the integration user since
        ``since`` (the org's time before the create was sent, less a second for the Date header's whole seconds),
        with this object, operation, external id field and API version. Bulk API 2.0 jobs carry no mark of their
        own, so another process of the same user may have created one in the same second: with two candidates
        none is taken (a new job is created), and a taken job that already holds data is given back (_upload)."""
        listing = self.client.call(what, lambda sf: sf.restful("jobs/ingest", method="GET")) or {}
        user = (self.client.identity or ("", ""))[1][:15]
        earliest = since - timedelta(seconds=1) if since else None
        external_id = (self.external_id_field or "").lower()
        found = [job for job in listing.get("records", []) if job.get("state") == "Open"
                 and str(job.get("object", "")).lower() == self.object_name.lower()
                 and job.get("operation") == self.operation and str(job.get("createdById", ""))[:15] == user
                 and (self.operation != "upsert" or str(job.get("externalIdFieldName") or "").lower() == external_id)
                 and float(job.get("apiVersion") or 0) == float(self.client.api_version)
                 and (earliest is None or _when(str(job.get("createdDate", ""))) >= earliest)]
        return str(found[0]["id"]) if len(found) == 1 else None

    def _upload(self, job_id: str, data: str, what: str, *, adopted: bool) -> bool:
        """The job's data sent; False when the job was adopted and already held data (not ours after all)."""
        for attempt in range(1, self.client.adapter.attempts + 1):
            try:
                return bool(self.client.call(what, lambda sf, again=attempt > 1: self._put(
                    sf, job_id, data, again=again, adopted=adopted)))
            except MaybeApplied:
                if attempt == self.client.adapter.attempts:
                    raise
        raise AssertionError("unreachable")

    def _put(self, sf: Salesforce, job_id: str, data: str, *, again: bool, adopted: bool) -> bool:
        """PUT the job's data. Sent again after an unclear answer, Salesforce's refusal of a second upload means
        the first one landed; refused the first time in an adopted job, the data in it is someone else's."""
        try:
            self._bulk(sf).upload_job_data(job_id, data)
        except SalesforceMalformedRequest as error:
            content = error.content[0] if isinstance(error.content, list) and error.content else {}
            taken = "multiple contents" in str(content.get("message", ""))
            if taken and adopted and not again:
                return False
            if not (again and taken):
                raise
        return True

    def _close(self, job_id: str, what: str) -> None:
        for attempt in range(1, self.client.adapter.attempts + 1):
            try:
                self.client.call(what, lambda sf: self._bulk(sf).close_job(job_id))
                return
            except MaybeApplied:
                if attempt == self.client.adapter.attempts:
                    raise
                if self._info(job_id, what)["state"] != "Open":
                    return

    def _wait(self, job_id: str, what: str) -> dict[str, Any]:
        while True:
            job = self._info(job_id, what)
            if job["state"] in ENDED:
                return job
            time.sleep(self.client.poll_interval)

    # ---- results -----------------------------------------------------------------------------

    def _results(self, job_id: str, what: str, chunk: _Chunk, kind: str) -> list[tuple[int | None, str]]:
        """The job's failedResults (each with its sf__Error) or unprocessedrecords, as (position in the chunk,
        sf__Error). Salesforce lists them in no set order, so each is matched to its row by the digest of the
        columns the result file echoes (named as sent, whatever their case); None for a row matching none."""
        pending: dict[bytes, list[str]] = {}
        echoed: list[int] = []  # positions in self.columns of the columns the results carry
        download = "get_failed_records" if kind == "failedResults" else "get_unprocessed_records"
        with tempfile.NamedTemporaryFile(prefix=f"walkme-dic-{kind}-", suffix=".csv") as results:
            self.client.call(what, lambda sf: getattr(getattr(sf.bulk2, self.object_name), download)(
                job_id, file=results.name))
            with open(results.name, encoding="utf-8-sig", newline="") as text:
                reader = csv.reader(text)
                names = {name.lower(): i for i, name in enumerate(next(reader, []))}
                error_at = names.get("sf__error")
                echoed = [i for i, column in enumerate(self.header) if column.lower() in names]
                at = [names[self.header[i].lower()] for i in echoed]
                for row in reader:
                    values = [row[j] if j < len(row) else "" for j in at]
                    error = row[error_at] if error_at is not None and error_at < len(row) else ""
                    pending.setdefault(_digest(values), []).append(error)
        found: list[tuple[int | None, str]] = []
        if pending and echoed:
            for position, values in chunk.scan():
                errors = pending.get(_digest([values[i] if i < len(values) else "" for i in echoed]))
                if errors:
                    found.append((position, errors.pop(0)))
        found.extend((None, error) for errors in pending.values() for error in errors)
        return found


class _Chunk:
    """One job's CSV on disk, and the input index of each of its rows."""

    def __init__(self, columns: list[str], header: list[str]) -> None:
        self.columns, self.header = columns, header
        self.file: IO[bytes] = tempfile.NamedTemporaryFile(prefix="walkme-dic-bulk-", suffix=".csv")  # noqa: SIM115
        self.rows = array("q")
        self.size = self.file.write(_line(header))

    def encode(self, record: dict[str, object]) -> bytes:
        return _line([_csv_value(record[c]) if c in record else "" for c in self.columns])

    def add(self, index: int, line: bytes) -> None:
        self.size += self.file.write(line)
        self.rows.append(index)

    def scan(self) -> Iterator[tuple[int, list[str]]]:
        """(position, values) of every row spooled, read back from the file (which stays open)."""
        self.file.flush()
        self.file.seek(0)
        spooled = io.TextIOWrapper(self.file, encoding="utf-8", newline="")
        try:
            reader = csv.reader(spooled)
            next(reader, None)
            yield from enumerate(reader)
        finally:
            spooled.detach()

    def subset(self, positions: list[int]) -> _Chunk:
        """A new chunk of the rows at ``positions`` (ascending), with their input indices."""
        wanted = iter(positions)
        subset, target = _Chunk(self.columns, self.header), next(wanted, None)
        for position, values in self.scan():
            if position == target:
                subset.add(self.rows[position], _line(values))
                target = next(wanted, None)
        return subset


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


def _worth_resending(job: dict[str, Any]) -> bool:
    """A Failed job's unprocessed records are sent again unless it failed on its data itself (InvalidBatch: a field
    Salesforce does not know, a malformed file; the same file fails the same way) or someone aborted it."""
    message = str(job.get("errorMessage") or "")
    return job["state"] == "Failed" and not message.startswith(("InvalidBatch", "InvalidJob"))


def _digest(values: list[str]) -> bytes:
    return hashlib.blake2b("\x1f".join(values).encode(), digest_size=16).digest()


def _when(value: str) -> datetime:
    """A Salesforce dateTime (``2026-11-20T08:00:00.000+0000``)."""
    return datetime.fromisoformat(value)


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
