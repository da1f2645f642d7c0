"""One sync run: read, map, validate, write — streaming, atomic or idempotent, never half-applied.

Inbound (file → WalkMe user attributes) makes two streaming passes: the first reads, maps and
validates every row (counting rejects) so that a run over the rejection limit fails before
anything is written; the second re-reads the same object version (same ETag) and sends.
Outbound (WalkMe Insights → file) streams once into an atomic writer that is committed only
when the whole export succeeded and stayed within the limits; otherwise it is aborted.
"""

from __future__ import annotations

import io
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from walkme_dic.api.integration import MODSTAMP, FileSettings, IntegrationSpec
from walkme_dic.api.run import RejectedRow, SyncRequest, SyncResult
from walkme_dic.connectors.base import FileStore
from walkme_dic.connectors.registry import open_file_store
from walkme_dic.connectors.walkme import WalkMeClient
from walkme_dic.errors import DicError, PermanentError
from walkme_dic.redaction import redact
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.keys import SpooledKeys, count_missing
from walkme_dic.sync.mapping import Mapper, RowError
from walkme_dic.sync.readers import CountingReader, Rejected, Row, read_rows
from walkme_dic.sync.writers import RecordEncoder, render_path, wants_gzip

SAMPLE_REJECTIONS = 20
PROGRESS_ROWS = 50_000
PROGRESS_SECONDS = 1.0
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Tally:
    """Counts of a run; rejected samples are capped, counts never are."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    samples: list[RejectedRow] = field(default_factory=list)

    def reject(self, row: int, reason: str) -> None:
        self.rejected += 1
        if len(self.samples) < SAMPLE_REJECTIONS:
            self.samples.append(RejectedRow(row=row, reason=reason))

    def over_limit(self, spec: IntegrationSpec) -> str | None:
        if spec.max_rejected_rows is not None and self.rejected > spec.max_rejected_rows:
            return f"{self.rejected} rows rejected, more than maxRejectedRows {spec.max_rejected_rows}"
        if spec.max_rejected_percent is not None and self.read:
            share = 100 * self.rejected / self.read
            if share > spec.max_rejected_percent:
                return (f"{self.rejected} of {self.read} rows rejected ({share:.1f}%), more than "
                        f"maxRejectedPercent {spec.max_rejected_percent:g}%")
        return None


class Reporter:
    """Progress lines at most every second or every 50k rows."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.last, self.last_rows = progress, 0.0, 0

    def __call__(self, phase: str, tally: Tally, *, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_SECONDS or tally.read - self.last_rows >= PROGRESS_ROWS:
            self.last, self.last_rows = now, tally.read
            self.progress({"phase": phase, "rowsRead": tally.read, "rowsWritten": tally.written,
                           "rowsRejected": tally.rejected})


def run_sync(request: SyncRequest, credentials: CredentialSet, *, progress: Progress | None = None) -> SyncResult:
    """Run one sync; never raises: failures become a Failed result with a reason and a clean message."""
    secrets = list(credentials.values())
    try:
        if request.spec.direction == "Inbound":
            result = Inbound(request, credentials, Reporter(progress)).run()
        else:
            result = Outbound(request, credentials, Reporter(progress)).run()
    except DicError as error:
        result = SyncResult(result="Failed", reason=error.reason, message=error.message)
    except Exception as error:
        result = SyncResult(result="Failed", reason="InternalError", message=f"{type(error).__name__}: {error}")
    result.message = redact(result.message, secrets)
    for sample in result.rejected:
        sample.reason = redact(sample.reason, secrets)
    return result


def _file_store(request: SyncRequest, credentials: CredentialSet) -> FileStore:
    if request.connection.provider not in ("s3", "azureBlob"):
        raise PermanentError(f"a file needs an s3 or azureBlob Connection, not {request.connection.provider}",
                             reason="ConnectionTypeMismatch")
    return open_file_store(request.connection, credentials.role("external"))


class RowNumbers:
    """Row numbers of the records sent, by send index, kept as the starts of consecutive stretches
    (rows are consecutive except around rejected ones), so memory follows the rejections, not the rows."""

    def __init__(self) -> None:
        self.indexes: list[int] = []  # send index where a stretch starts
        self.rows: list[int] = []  # its row number
        self.count = 0

    def add(self, row: int) -> None:
        if not self.rows or row != self.rows[-1] + (self.count - self.indexes[-1]):
            self.indexes.append(self.count)
            self.rows.append(row)
        self.count += 1

    def of(self, index: int) -> int:
        """The row number of the ``index``-th record sent (0 if nothing was sent with that index)."""
        if not 0 <= index < self.count:
            return 0
        stretch = bisect_right(self.indexes, index) - 1
        return self.rows[stretch] + index - self.indexes[stretch]


class Inbound:
    """file or Salesforce query → WalkMe user attributes (never deletes)."""

    def __init__(self, request: SyncRequest, credentials: CredentialSet, report: Reporter) -> None:
        self.request, self.spec, self.report = request, request.spec, report
        assert self.spec.destination.walkme is not None
        self.destination = self.spec.destination.walkme
        self.source = FileSource(request, credentials) if self.spec.source.file else \
            SalesforceSource(request, credentials)
        walkme = request.walkme_connection.walkme
        assert walkme is not None
        self.walkme = WalkMeClient(walkme, credentials.role("walkme"))
        self.token = credentials.role("integration-token").get(self.destination.integration_token_secret_ref.key, "")
        if not self.token:
            raise PermanentError("the integration token Secret key is empty or not mounted "
                                 f"({self.destination.integration_token_secret_ref.key!r})", reason="SecretKeyMissing")
        self.mapper = Mapper(self.spec.mapping, self.destination.user_id_property)

    def run(self) -> SyncResult:
        fingerprint = self.source.fingerprint()
        if fingerprint and fingerprint == self.request.state.source_fingerprint and not self.request.force:
            return SyncResult(result="Skipped", reason="SourceUnchanged", source_fingerprint=fingerprint,
                              message=f"{self.source.name} is unchanged since the last run (ETag {fingerprint})")
        with SpooledKeys() as source_keys:
            tally, size = self._validate(fingerprint, source_keys)
            limit = tally.over_limit(self.spec)
            if limit:
                return self._result("Failed", "TooManyRejectedRows", tally, size, fingerprint,
                                    f"{limit}; nothing was written")
            if self.spec.dry_run:
                tally.written = tally.read - tally.rejected
                return self._result("Succeeded", "DryRun", tally, size, fingerprint, "dry run: nothing written")
            kept = None if self.source.incremental else self._users_kept(source_keys)
        self._send(tally, fingerprint)
        result = self._result("Succeeded", "Synced", tally, size, fingerprint, "")
        result.users_kept = kept
        result.watermark = self.source.watermark
        return result

    def _validate(self, fingerprint: str | None, keys: SpooledKeys) -> tuple[Tally, int]:
        tally = Tally()
        rows, counter = self.source.rows(fingerprint, self.mapper.required_columns())
        for item in rows:
            tally.read += 1
            if isinstance(item, Rejected):
                tally.reject(item.number, f"row {item.number}: {item.reason}")
                continue
            try:
                self.mapper.map(item.values)
                keys.add(self.mapper.key_of(item.values))
            except RowError as error:
                tally.reject(item.number, f"row {item.number}: {error}")
            self.report("validate", tally)
        return tally, counter.count

    def _send(self, tally: Tally, fingerprint: str | None) -> None:
        sent_rows = RowNumbers()
        rows, _ = self.source.rows(fingerprint, self.mapper.required_columns())

        def records() -> Iterator[dict[str, Any]]:
            for item in rows:
                if isinstance(item, Row):
                    try:
                        record = self.mapper.map(item.values)
                    except RowError:
                        continue
                    sent_rows.add(item.number)
                    yield record
                    tally.written += 1
                    self.report("write", tally)

        outcome = self.walkme.upsert_user_attributes(self.token, records())
        tally.written = outcome.written
        for index, reason in outcome.failed:
            row = sent_rows.of(index)
            tally.reject(row, f"row {row}: {reason}")

    def _users_kept(self, source_keys: SpooledKeys) -> int | None:
        """Users this token imported before that are absent from this source — WalkMe keeps them."""
        with SpooledKeys() as imported:
            try:
                for user in self.walkme.imported_user_ids(self.token):
                    imported.add(user)
            except DicError:
                return None
            return count_missing(imported.sorted(), source_keys.sorted())

    def _result(self, outcome: str, reason: str, tally: Tally, size: int, fingerprint: str | None,
                message: str) -> SyncResult:
        return SyncResult(
            result=outcome, reason=reason, message=message, rows_read=tally.read, rows_written=tally.written,
            rows_rejected=tally.rejected, bytes=size, dry_run=self.spec.dry_run,
            destination=f"WalkMe user attributes ({self.destination.user_id_property})",
            source_fingerprint=fingerprint if outcome == "Succeeded" else None, rejected=tally.samples,
        )


class FileSource:
    """A CSV / JSON-lines object in S3 or Azure Blob; its ETag is the fingerprint."""

    incremental = False
    watermark: str | None = None

    def __init__(self, request: SyncRequest, credentials: CredentialSet) -> None:
        assert request.spec.source.file is not None
        self.file: FileSettings = request.spec.source.file
        self.store = _file_store(request, credentials)
        self.name = self.file.path

    def fingerprint(self) -> str | None:
        return self.store.stat(self.file.path).fingerprint

    def rows(self, fingerprint: str | None, required: list[str]) -> tuple[Iterator[Row | Rejected], CountingReader]:
        if self.store.stat(self.file.path).fingerprint != fingerprint:
            raise PermanentError(f"{self.file.path} changed while it was being imported; the next run will import "
                                 "the new version", reason="SourceChanged")
        counter = CountingReader(self.store.open_read(self.file.path))
        buffered = io.BufferedReader(counter, buffer_size=1024 * 1024)
        return read_rows(buffered, self.file, required), counter


class SalesforceSource:
    """A SOQL query (paged by the client); a query has no fingerprint, so every run reads it. With ``since``
    only records changed at or after it (SystemModstamp) are read, and the newest SystemModstamp read
    becomes the watermark the next ``lastRun`` starts from."""

    def __init__(self, request: SyncRequest, credentials: CredentialSet) -> None:
        from walkme_dic.connectors.salesforce import SalesforceClient

        source = request.spec.source.salesforce
        provider = request.connection.salesforce
        if source is None or provider is None:
            raise PermanentError("spec.source.salesforce needs a salesforce Connection", reason="InvalidSpec")
        self.incremental = source.since is not None
        self.soql = source.query(request.state.watermark if source.since == "lastRun" else source.since)
        self.selected_modstamp = MODSTAMP.lower() in {f.lower() for f in source.fields or []}
        self.watermark: str | None = None
        self.client = SalesforceClient(provider, credentials.role("external"))
        self.name = "the Salesforce query"

    def fingerprint(self) -> str | None:
        return None

    def rows(self, fingerprint: str | None, required: list[str]) -> tuple[Iterator[Row | Rejected], CountingReader]:
        records = (Row(number, self._stamped(dict(record)))
                   for number, record in enumerate(self.client.query(self.soql), start=1))
        return records, CountingReader(io.BytesIO())

    def _stamped(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record (without SystemModstamp unless the spec selects it); its stamp moves the watermark."""
        if self.incremental:
            stamp = record.get(MODSTAMP) if self.selected_modstamp else record.pop(MODSTAMP, None)
            if stamp:
                self.watermark = later(self.watermark, str(stamp))
        return record


def later(watermark: str | None, stamp: str) -> str:
    """The later of a watermark and a Salesforce dateTime (``…000+0000``), as RFC 3339 UTC with milliseconds."""
    moment = datetime.fromisoformat(stamp).astimezone(UTC)
    if watermark is not None:
        moment = max(moment, datetime.fromisoformat(watermark.replace("Z", "+00:00")))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Outbound:
    """WalkMe Insights → a file (atomic: committed once, or aborted) or Salesforce (upsert by external id)."""

    def __init__(self, request: SyncRequest, credentials: CredentialSet, report: Reporter) -> None:
        self.request, self.spec, self.report = request, request.spec, report
        assert self.spec.source.walkme is not None
        self.source = self.spec.source.walkme
        self.credentials = credentials
        walkme = request.walkme_connection.walkme
        assert walkme is not None
        self.walkme = WalkMeClient(walkme, credentials.role("walkme"))
        self.mapper = Mapper(self.spec.mapping, self.spec.mapping.key.destination)

    def run(self) -> SyncResult:
        since = self.request.state.watermark if self.source.since == "lastRun" else self.source.since
        export = self.walkme.export(self.source.dataset, since=since, report_id=self.source.report_id)
        if self.spec.destination.file is not None:
            result = self._to_file(export, self.spec.destination.file)
        else:
            result = self._to_salesforce(export)
        if result.result == "Succeeded" and not self.spec.dry_run:
            result.watermark = export.watermark or since
        return result

    def _mapped(self, export: Iterable[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
        for number, values in enumerate(export, start=1):
            tally.read += 1
            try:
                record = self.mapper.map(values)
            except RowError as error:
                tally.reject(number, f"record {number}: {error}")
                continue
            tally.written += 1
            self.report("export", tally)
            yield record

    def _to_file(self, export: Iterable[dict[str, Any]], settings: FileSettings) -> SyncResult:
        store = _file_store(self.request, self.credentials)
        path = render_path(settings.path, run_id=self.request.run_id, slot=self.request.slot, now=datetime.now(UTC))
        tally = Tally()
        writer = store.open_write(path)
        try:
            encoder = RecordEncoder(writer, settings, self.mapper.columns(), gzip_output=wants_gzip(settings, path))
            encoder.add_all(self._mapped(export, tally))
            limit = tally.over_limit(self.spec)
            if limit or self.spec.dry_run:
                writer.abort()
            else:
                encoder.finish()
                writer.commit()
        except BaseException:
            writer.abort()
            raise
        if limit:
            return SyncResult(result="Failed", reason="TooManyRejectedRows", message=f"{limit}; nothing was written",
                              rows_read=tally.read, rows_rejected=tally.rejected, rejected=tally.samples)
        return self._succeeded(tally, 0 if self.spec.dry_run else encoder.bytes, store.describe(path))

    def _to_salesforce(self, export: Iterable[dict[str, Any]]) -> SyncResult:
        from walkme_dic.connectors.salesforce import SalesforceClient

        target = self.spec.destination.salesforce
        provider = self.request.connection.salesforce
        if target is None or provider is None:
            raise PermanentError("spec.destination.salesforce needs a salesforce Connection", reason="InvalidSpec")
        tally = Tally()
        if self.spec.dry_run:
            for _ in self._mapped(export, tally):
                pass
            return self._succeeded(tally, 0, f"Salesforce {target.object}")
        client = SalesforceClient(provider, self.credentials.role("external"))
        report = client.write(target.object, target.operation, self._mapped(export, tally),
                              target.external_id_field, bulk_threshold=target.bulk_threshold)
        tally.written = report.written
        for index, reason in report.failed:
            tally.reject(index + 1, f"record {index + 1}: {reason}")
        limit = tally.over_limit(self.spec)
        if limit:  # upserts are idempotent by external id: the next run repairs what this one wrote
            return SyncResult(result="Failed", reason="TooManyRejectedRows", message=limit, rows_read=tally.read,
                              rows_written=tally.written, rows_rejected=tally.rejected, rejected=tally.samples)
        return self._succeeded(tally, 0, f"Salesforce {target.object} ({report.api_calls} API calls)")

    def _succeeded(self, tally: Tally, size: int, destination: str) -> SyncResult:
        return SyncResult(
            result="Succeeded", reason="DryRun" if self.spec.dry_run else "Synced",
            message="dry run: nothing written" if self.spec.dry_run else "",
            rows_read=tally.read, rows_written=tally.written, rows_rejected=tally.rejected, bytes=size,
            dry_run=self.spec.dry_run, destination=destination, rejected=tally.samples,
        )


