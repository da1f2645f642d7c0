"""One sync run: read, map, validate, write — streaming, atomic or idempotent, never half-applied.

Inbound (file or SOQL → WalkMe user attributes) reads the source once: every row is read, mapped,
validated and spooled, encoded, to local disk (sync/spool.py), so that a run over the rejection
limit fails before anything is written and repeated keys are resolved (the last row wins); then
the spool is sent. Rows WalkMe refuses while sending are narrowed down to the refused ones.
Outbound (WalkMe Insights → file) streams once into an atomic writer that is committed only
when the whole export succeeded and stayed within the limits; otherwise it is aborted. Outbound to
Salesforce or a webhook sends as it reads (upserts by external id; batches with idempotency keys).

The engine knows no concrete client: it reads through connectors/records.py's RecordSource (or a file
store, connectors/base.py) and writes through a RecordDestination, each opened by connectors/registry.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from walkme_dic import reasons
from walkme_dic.api.connection import FILE_PROVIDERS
from walkme_dic.api.integration import MODSTAMP, FileSettings, IntegrationSpec, WebhookDestination
from walkme_dic.api.run import DuplicateRow, RejectedRow, SyncRequest, SyncResult
from walkme_dic.connectors.base import FileStore
from walkme_dic.connectors.records import BATCH, Pages, RecordSource, WriteReport, record_label
from walkme_dic.connectors.registry import (
    open_file_store,
    open_salesforce_object,
    open_salesforce_query,
    open_user_attributes,
    open_walkme_export,
    open_webhook,
)
from walkme_dic.errors import (
    DestinationExistsError,
    DicError,
    NotFoundError,
    PartlyApplied,
    PermanentError,
    TransientError,
)
from walkme_dic.redaction import redact
from walkme_dic.sync.changes import ChangeDetector, SendMask, clear_state
from walkme_dic.sync.columns import Table, map_block, tabulate
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.export_files import ExportFiles, open_export_store
from walkme_dic.sync.mapping import Mapper, RowError
from walkme_dic.sync.outbound_keys import LastRowWins
from walkme_dic.sync.readers import Block, CountingReader, LineCount, blocks_of, numbered, read_blocks
from walkme_dic.sync.rejections import RejectionLog, published, rejection_log
from walkme_dic.sync.spool import InboundSpool
from walkme_dic.sync.writers import RecordEncoder, content_type, covers_unicode, render_path, unencodable, wants_gzip

SAMPLE_REJECTIONS = 20
PROGRESS_ROWS = 50_000
REPORT_EVERY = 1024  # rows between two looks at the clock
PROGRESS_SECONDS = 1.0
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Tally:
    """Counts of a run; rejected samples are capped, counts never are."""

    read: int = 0
    written: int = 0
    rejected: int = 0
    refused: int = 0  # of the rejected: refused by the destination while sending
    samples: list[RejectedRow] = field(default_factory=list)
    log: RejectionLog | None = None  # every rejection, for the report (sync/rejections.py)
    label: Callable[[int], str] = record_label  # where an export's record came from (RecordSource.label)

    def reject(self, row: int, reason: str) -> None:
        self.rejected += 1
        if len(self.samples) < SAMPLE_REJECTIONS:
            self.samples.append(RejectedRow(row=row, reason=reason))
        if self.log is not None:
            self.log.add(row, reason)

    def first(self, count: int = 3) -> str:
        """The first rejections, for a message: " (first: line 2: …; line 7: …)"."""
        shown = "; ".join(sample.reason for sample in sorted(self.samples, key=lambda s: s.row)[:count])
        return f" (first: {shown}{'; …' if self.rejected > count else ''})" if shown else ""

    def over_limit(self, spec: IntegrationSpec) -> str | None:
        if spec.max_rejected_rows is None and spec.max_rejected_percent is None and self.rejected and \
                _incremental_export(spec):
            rows = "row" if self.rejected == 1 else "rows"
            return (f"{self.rejected} {rows} rejected{self.first()}; an incremental export (since: lastRun) moves "
                    "its watermark past every row it reads, so a rejected row would never be exported: by default "
                    "none may be. Fix the rows, or set maxRejectedRows / maxRejectedPercent to let runs go on "
                    "without them")
        if spec.max_rejected_rows is not None and self.rejected > spec.max_rejected_rows:
            return f"{self.rejected} rows rejected, more than maxRejectedRows {spec.max_rejected_rows}"
        if spec.max_rejected_percent is not None and self.read:
            share = 100 * self.rejected / self.read
            if share > spec.max_rejected_percent:
                return (f"{self.rejected} of {self.read} rows rejected ({share:.1f}%), more than "
                        f"maxRejectedPercent {spec.max_rejected_percent:g}%")
        return None


def _incremental_export(spec: IntegrationSpec) -> bool:
    return spec.direction == "Outbound" and spec.source.walkme is not None and spec.source.walkme.since == "lastRun"


class Reporter:
    """Progress lines at most every second or every 50k rows; callers call it per block or every REPORT_EVERY
    records, not per record (it reads the clock)."""

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


def run_sync(request: SyncRequest, credentials: CredentialSet, *, progress: Progress | None = None,
             clock: Callable[[], float] = time.time) -> SyncResult:
    """Run one sync; never raises: failures become a Failed result with a reason and a clean message. ``clock``:
    the time now (Unix seconds), for change detection's fullResendInterval."""
    secrets = list(credentials.values())
    try:
        if request.spec.direction == "Inbound":
            result = Inbound(request, credentials, Reporter(progress), clock).run()
        else:
            result = Outbound(request, credentials, Reporter(progress)).run()
    except DicError as error:
        result = SyncResult(result="Failed", reason=error.reason, message=error.message,
                            retryable=isinstance(error, TransientError))
    except Exception as error:
        result = SyncResult(result="Failed", reason=reasons.INTERNAL_ERROR, message=f"{type(error).__name__}: {error}",
                            retryable=True)
    result.message = redact(result.message, secrets)
    for sample in result.rejected:
        sample.reason = redact(sample.reason, secrets)
    return result


def _file_store(request: SyncRequest, credentials: CredentialSet) -> FileStore:
    if request.connection.provider not in FILE_PROVIDERS:
        raise PermanentError(f"a file needs an {' or '.join(FILE_PROVIDERS)} Connection, not "
                             f"{request.connection.provider}",
                             reason=reasons.CONNECTION_TYPE_MISMATCH)
    return open_file_store(request.connection, credentials.role("external"))


def _exists(store: FileStore, path: str) -> bool:
    """Whether ``path`` exists, asked before an export that may not replace it (so none is fetched in vain)."""
    try:
        store.stat(path)
    except NotFoundError:
        return False
    return True


class Inbound:
    """file or Salesforce query → WalkMe user attributes (never deletes), in one pass then a send.

    The pass reads, validates and maps every row once into an :class:`InboundSpool`; the limits are
    decided before anything is sent; the send reads the spool, the last row of each key only. Rows
    WalkMe refuses at send time are rejected rows like the others, counted against the same limits.
    """

    def __init__(self, request: SyncRequest, credentials: CredentialSet, report: Reporter,
                 clock: Callable[[], float] = time.time) -> None:
        self.request, self.spec, self.report, self.clock = request, request.spec, report, clock
        self.refused: list[int] = []  # spool indexes WalkMe refused while sending
        assert self.spec.destination.walkme is not None
        self.destination = self.spec.destination.walkme
        self.source = FileSource(request, credentials) if self.spec.source.file else \
            SalesforceSource(request, credentials)
        walkme = request.walkme_connection.walkme if request.walkme_connection else None
        assert walkme is not None, "an Inbound spec names its WalkMe Connection (IntegrationSpec)"
        token = credentials.role("integration-token").get(self.destination.integration_token_secret_ref.key, "")
        self.users = open_user_attributes(walkme, credentials.role("walkme"), token)
        if not token:
            raise PermanentError("the integration token Secret key is empty or not mounted "
                                 f"({self.destination.integration_token_secret_ref.key!r})",
                                 reason=reasons.SECRET_KEY_MISSING)
        self.mapper = Mapper(self.spec.mapping, self.destination.user_id_property, limits=True)

    def run(self) -> SyncResult:
        fingerprint = self.source.fingerprint()
        if fingerprint and fingerprint == self.request.state.source_fingerprint and not self.request.force:
            return SyncResult(result="Skipped", reason=reasons.SOURCE_UNCHANGED, source_fingerprint=fingerprint,
                              message=f"{self.source.name} is unchanged since the last run (ETag {fingerprint})")
        files = self.source.store if isinstance(self.source, FileSource) else None
        store = None if self.spec.dry_run else files
        # change detection keeps its state per Integration uid: a request without one (a local run) sends everyone
        tracked = files if self.request.integration.uid else None
        detector = ChangeDetector(tracked, self.request, self.clock()) if tracked and self.spec.change_detection \
            else None
        with InboundSpool() as spool, rejection_log(store, self.source.unit) as log, \
                contextlib.closing(detector) if detector else contextlib.nullcontext():
            tally, size = self._spool(fingerprint, spool, log, detector)
            spool.resolve()
            keep = detector.compare(spool.count) if detector else None
            sending = spool.unique - (detector.counts.unchanged if detector and keep is not None else 0)
            result = self._before_sending(tally, spool, size, fingerprint, sending)
            if result is None:
                self._send(spool, tally, keep, sending)
                result = self._after_sending(tally, spool, size, fingerprint, sending)
                if result.result == "Succeeded":  # a dry or failed run must not move the watermark (nor the state)
                    result.watermark = self.source.watermark
                    problem = detector.publish(self.refused) if detector else \
                        clear_state(tracked, self.request) if tracked else ""
                    result.message = "; ".join(filter(None, (result.message, problem)))
            return published(self._changes(result, detector, keep, sending, tracked), log, store, self.request)

    def _changes(self, result: SyncResult, detector: ChangeDetector | None, keep: SendMask | None, sending: int,
                 files: FileStore | None) -> SyncResult:
        """``result`` with what change detection found: sent, unchanged, users kept, why a full send."""
        if files is None or result.result != "Succeeded":
            return result
        if detector is None:
            return result.model_copy(update={"full_send": reasons.FULL_SEND_DISABLED, "sent": sending})
        counts = detector.counts
        full = keep is None
        update = {"sent": sending, "unchanged": 0 if full else counts.unchanged, "full_send": detector.full_send,
                  "new_users": counts.new, "users_kept": counts.kept if detector.old is not None else None}
        if detector.full_send:
            note = f"full send ({detector.full_send}: {detector.why})"
            update["message"] = "; ".join(filter(None, (result.message, note)))
        return result.model_copy(update=update)

    def _spool(self, fingerprint: str | None, spool: InboundSpool, log: RejectionLog | None,
               detector: ChangeDetector | None) -> tuple[Tally, int]:
        tally = Tally(log=log)
        blocks, counter = self.source.blocks(fingerprint, self.mapper.required_columns())
        unit = self.source.unit
        for block in blocks:
            tally.read += block.size
            mapped = map_block(self.mapper, block)
            for number, reason in sorted(block.rejected + mapped.refused):
                tally.reject(number, f"{unit} {number}: {reason}")
            spool.add(mapped.numbers, mapped.keys, mapped.records)
            if detector is not None:
                detector.add(mapped.keys, mapped.records)
            self.report("read", tally)
        accounted_read(self.source.name, self.source.lines, tally, spool.count)
        return tally, counter.count

    def _before_sending(self, tally: Tally, spool: InboundSpool, size: int, fingerprint: str | None,
                        sending: int) -> SyncResult | None:
        """The result when nothing is to be sent (over the limit, dry run, empty source), else None."""
        limit = tally.over_limit(self.spec)
        if limit:
            return self._result("Failed", "TooManyRejectedRows", tally, spool, size, fingerprint,
                                f"{limit}; nothing was written{tally.first()}")
        if tally.read > 0 and spool.unique == 0:
            return self._result("Failed", reasons.NOTHING_APPLIED, tally, spool, size, fingerprint,
                                f"every one of the {tally.read} rows was rejected; nothing was sent{tally.first()}")
        if tally.read == 0 and not self.source.incremental:  # incremental: nothing changed is no news
            outcome = "Failed" if self.spec.fail_on_empty_source else "Succeeded"
            return self._result(outcome, reasons.EMPTY_SOURCE, tally, spool, size, fingerprint,
                                f"{self.source.name} has no data rows; nothing was sent")
        if self.spec.dry_run:
            tally.written = sending
            return self._result("Succeeded", "DryRun", tally, spool, size, fingerprint, "dry run: nothing written")
        return None

    def _send(self, spool: InboundSpool, tally: Tally, keep: SendMask | None, sending: int) -> None:
        outcome = WriteReport()
        try:
            self.users.write(spool.batches(BATCH, keep), outcome)
        except DicError as error:
            error.message += (f"; sending stopped after WalkMe acknowledged at least {outcome.written} of "
                              f"{sending} rows (it has no transactions: the next run converges)")
            raise
        tally.written = outcome.written
        for index, reason in outcome.failed:
            row = spool.rows.of(index)
            tally.reject(row, f"{self.source.unit} {row}: {reason}")
        tally.refused = len(outcome.failed)
        self.refused = [index for index, _ in outcome.failed]
        accounted_send(sending, tally)
        self.report("sent", tally, force=True)

    def _after_sending(self, tally: Tally, spool: InboundSpool, size: int, fingerprint: str | None,
                       sending: int) -> SyncResult:
        limit = tally.over_limit(self.spec)
        if limit:
            return self._result(
                "Failed", reasons.PARTIALLY_APPLIED, tally, spool, size, fingerprint,
                f"{limit} ({tally.refused} refused by WalkMe while sending); {tally.written} rows were applied "
                "to WalkMe, which has no transactions: fix the rejected rows and the next run converges"
                + tally.first())
        if tally.written == 0 and sending:
            return self._result("Failed", reasons.NOTHING_APPLIED, tally, spool, size, fingerprint,
                                f"WalkMe refused every one of the {sending} records sent{tally.first()}")
        return self._result("Succeeded", reasons.SYNCED, tally, spool, size, fingerprint, "")

    def _result(self, outcome: str, reason: str, tally: Tally, spool: InboundSpool, size: int,
                fingerprint: str | None, message: str) -> SyncResult:
        duplicates, lines = spool.duplicates, self.source.lines
        return SyncResult(
            result=outcome, reason=reason, message=message, rows_read=tally.read, rows_written=tally.written,
            lines_read=lines.read if lines else None, blank_lines=lines.blank if lines else None,
            continuation_lines=lines.continued if lines else None,
            rows_rejected=tally.rejected, bytes=size, dry_run=self.spec.dry_run,
            destination=f"WalkMe user attributes ({self.destination.user_id_property})",
            source_fingerprint=fingerprint if outcome == "Succeeded" else None, rejected=tally.samples,
            duplicate_keys=duplicates.count,
            duplicates=[DuplicateRow(row=row, replaced_by=later) for row, later in duplicates.samples],
        )


def _writable(numbers: list[int], table: Table, settings: FileSettings, tally: Tally) -> list[list[Any]]:
    """The table's columns without the rows a CSV file cannot hold as they are, each rejected with why: a
    character its encoding lacks, or a text that is its nullValue token (it would read back as null). A UTF
    encoding holds every character and no token is the default: no look at the rows on that, the common, path."""
    lossy = not covers_unicode(settings.encoding) and unencodable(
        ["\n".join(value for value in column if isinstance(value, str)) for column in table.columns],
        settings.encoding) is not None
    token = settings.null_value
    clash = bool(token) and any(token in column for column in table.columns)
    if not lossy and not clash:
        return table.columns
    refused = {number for number, _ in table.refused}
    kept_numbers = [number for number in numbers if number not in refused]
    bad = set()
    for position, row in enumerate(zip(*table.columns, strict=True)):
        texts = [value for value in row if isinstance(value, str)]
        why = unencodable(texts, settings.encoding) if lossy else None
        if why is None and clash and token in texts:
            why = (f"a value is {token!r}, the file's nullValue, and would read back as null; choose a nullValue no "
                   "value holds")
        if why is not None:
            bad.add(position)
            tally.reject(kept_numbers[position], f"{tally.label(kept_numbers[position])}: {why}")
    return [[value for position, value in enumerate(column) if position not in bad] for column in table.columns]


def accounted_read(name: str, lines: LineCount | None, tally: Tally, kept: int) -> None:
    """Every line of the file (``lines``; None for a query) is the header, a blank line or part of a row, and
    every row read is ``kept`` (spooled) or rejected; else the run stops before anything is sent (a reader that
    lost lines is a bug, never data)."""
    if lines is not None and lines.read != lines.header + lines.blank + lines.continued + tally.read:
        raise PermanentError(
            f"{name} has {lines.read} lines but {lines.header} header, {lines.blank} blank, {tally.read} rows and "
            f"{lines.continued} continuation lines were read; nothing was sent. This is a bug of walkme-dic: please "
            "report it with the file's shape", reason=reasons.LINES_UNACCOUNTED)
    if tally.read != kept + tally.rejected:
        raise PermanentError(
            f"{tally.read} rows were read but {kept} kept and {tally.rejected} rejected; nothing was "
            "sent. This is a bug of walkme-dic: please report it", reason=reasons.LINES_UNACCOUNTED)


def accounted_send(sent: int, tally: Tally) -> None:
    """Every record ``sent`` was acknowledged (``tally.written``) or refused (``tally.refused``) by WalkMe; else the
    run fails rather than report a success with records unaccounted for."""
    if tally.written + tally.refused != sent:
        raise PermanentError(
            f"{sent} records were sent but WalkMe acknowledged {tally.written} and refused "
            f"{tally.refused}: rows are unaccounted for, so the run is not a success (the next run converges)",
            reason=reasons.LINES_UNACCOUNTED)


class FileSource:
    """A CSV / JSON-lines file in a file store; its ETag (SFTP: size + mtime) is the fingerprint. Its rows are
    numbered by the line they start on (sync/readers.py)."""

    incremental = False
    unit = "line"
    lines: LineCount | None = None  # once read
    watermark: str | None = None

    def __init__(self, request: SyncRequest, credentials: CredentialSet) -> None:
        assert request.spec.source.file is not None
        self.file: FileSettings = request.spec.source.file
        self.store = _file_store(request, credentials)
        self.name = self.file.path

    def fingerprint(self) -> str | None:
        return self.store.stat(self.file.path).fingerprint

    def blocks(self, fingerprint: str | None, required: list[str]) -> tuple[Iterator[Block], CountingReader]:
        if self.store.stat(self.file.path).fingerprint != fingerprint:
            raise PermanentError(f"{self.file.path} changed while it was being imported; the next run will import "
                                 "the new version", reason=reasons.SOURCE_CHANGED)
        counter = CountingReader(self.store.open_read(self.file.path))
        buffered = io.BufferedReader(counter, buffer_size=1024 * 1024)
        reader = read_blocks(buffered, self.file, required)
        self.lines = reader.lines
        return iter(reader), counter


class SalesforceSource:
    """A SOQL query (paged by the client), run once per run; a query has no fingerprint, so every run reads it.
    With ``since`` only records changed at or after it (SystemModstamp) are read; with ``lastRun`` only those
    stamped more than ``incrementalLookbackSeconds`` before the run began by the org's clock, and that time
    becomes the watermark the next run starts from (getUpdated's latestDateCovered: a transaction still open
    during this read commits its changes with stamps before that time, and the next run reads them). Records
    are numbered from 1."""

    unit = "record"
    lines: LineCount | None = None  # a query has no lines

    def __init__(self, request: SyncRequest, credentials: CredentialSet) -> None:
        source = request.spec.source.salesforce
        provider = request.connection.salesforce
        if source is None or provider is None:
            raise PermanentError("spec.source.salesforce needs a salesforce Connection", reason=reasons.INVALID_SPEC)
        self.source = source
        self.incremental = source.since is not None
        self.since = request.state.watermark if source.since == "lastRun" else source.since
        self.selected_modstamp = MODSTAMP.lower() in {f.lower() for f in source.fields or []}
        self.watermark: str | None = None
        self.client = open_salesforce_query(provider, credentials.role("external"))
        self.name = "the Salesforce query"

    def fingerprint(self) -> str | None:
        return None

    def blocks(self, fingerprint: str | None, required: list[str]) -> tuple[Iterator[Block], CountingReader]:
        soql = self.source.query(self.since)
        if self.incremental:
            covered = self.client.covered_until(self.source.incremental_lookback_seconds)
            if self.since is not None:  # never behind the last run's (a clock that went back, a longer lookback)
                covered = max(covered, datetime.fromisoformat(self.since.replace("Z", "+00:00")))
            self.watermark = covered.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if self.source.since == "lastRun":
                soql = self.source.query(self.since, until=self.watermark)
        records = (self._unstamped(dict(record)) for record in self.client.query(soql))
        return blocks_of(records), CountingReader(io.BytesIO())

    def _unstamped(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record without SystemModstamp unless the spec selects it."""
        if self.incremental and not self.selected_modstamp:
            record.pop(MODSTAMP, None)
        return record


class Outbound:
    """WalkMe Insights → a file (atomic: committed once, or aborted), Salesforce (upsert by external id) or a
    webhook (signed batches with idempotency keys)."""

    def __init__(self, request: SyncRequest, credentials: CredentialSet, report: Reporter) -> None:
        self.request, self.spec, self.report = request, request.spec, report
        assert self.spec.source.walkme is not None
        self.source = self.spec.source.walkme
        self.credentials = credentials
        # exportFiles reads a bucket and calls no WalkMe API: it may have no WalkMe Connection
        self.walkme = request.walkme_connection.walkme if request.walkme_connection else None
        # to a file, values as they are (sync/mapping.py FILE_CONVERTERS); Salesforce and webhooks as before
        self.mapper = Mapper(self.spec.mapping, self.spec.mapping.key.destination,
                             as_is=self.spec.destination.file is not None)
        # where the export starts: the last run's watermark (lastRun), else the spec's time
        self.since = request.state.watermark if self.source.since == "lastRun" else self.source.since

    def run(self) -> SyncResult:
        since = self.since
        export = self._export(since)
        if isinstance(export, ExportFiles) and not export.files:
            return export.unchanged()
        if self.spec.destination.file is not None:
            result = self._to_file(export, self.spec.destination.file)
        elif self.spec.destination.webhook is not None:
            result = self._to_webhook(export, self.spec.destination.webhook)
        else:
            result = self._to_salesforce(export)
        if result.result == "Succeeded" and not self.spec.dry_run:
            result.watermark = export.watermark or since
            if isinstance(export, ExportFiles):
                result.exported_files = export.exported
        return result

    def _export(self, since: str | None) -> RecordSource:
        """The export files WalkMe's DIC wrote (sync/export_files.py), else what WalkMe's API serves."""
        files = self.source.export_files
        if files is None:
            assert self.walkme is not None, "an Outbound spec from WalkMe's API names its WalkMe Connection"
            return open_walkme_export(self.walkme, self.credentials.role("walkme"), self.source, since)
        store = open_export_store(self.request, self.credentials.role("exports"))
        done = self.request.state.exported_files if self.source.since == "lastRun" else []
        return ExportFiles(files, store, watermark=since, done=done, required=self.mapper.required_columns())

    def _mapped(self, export: Iterable[dict[str, Any]], tally: Tally,
                encoding: str = "utf-8") -> Iterator[dict[str, Any]]:
        """Mapped records; with the ``encoding`` of a file, one holding a character it lacks is rejected."""
        map_record, report = self.mapper.map, self.report  # per record: no attribute lookups
        lossy = not covers_unicode(encoding)
        for number, values in enumerate(export, start=1):
            tally.read += 1
            try:
                record = map_record(values)
                why = unencodable([v for v in record.values() if isinstance(v, str)], encoding) if lossy else None
            except RowError as error:
                why = str(error)
            if why is not None:
                tally.reject(number, f"{tally.label(number)}: {why}")
                continue
            tally.written += 1
            if not number % REPORT_EVERY:  # Reporter reads the clock only then: spare it the call in between
                report("export", tally)
            yield record

    def _to_file(self, export: RecordSource, settings: FileSettings) -> SyncResult:
        with export.pages() as pages:  # the export is fetched while the store is set up (an SDK to load)
            store = _file_store(self.request, self.credentials)
            with rejection_log(None if self.spec.dry_run else store, "record") as log:
                tally = Tally(log=log, label=export.label)
                return published(self._export_file(export, pages, store, settings, tally), log, store, self.request)

    def _export_file(self, export: RecordSource, pages: Pages, store: FileStore, settings: FileSettings,
                     tally: Tally) -> SyncResult:
        path = render_path(settings.path, run_id=self.request.run_id, slot=self.request.slot, now=datetime.now(UTC),
                           since=self.since)
        incremental = self.source.since == "lastRun"  # each run's rows are in its file only: never replaced
        if incremental and _exists(store, path):
            raise DestinationExistsError(store.describe(path))
        gzip_output = wants_gzip(settings, path)
        writer = store.open_write(path, overwrite=not incremental,
                                  content_type=content_type(settings, gzip_output=gzip_output))
        try:
            encoder = RecordEncoder(writer, settings, self.mapper.columns(), gzip_output=gzip_output)
            if settings.format == "csv":
                self._tabulated(pages, tally, encoder)
            else:
                encoder.add_records(self._mapped(chain.from_iterable(pages), tally, settings.encoding))
            limit = tally.over_limit(self.spec)
            if limit or self.spec.dry_run:
                writer.abort()
            else:
                encoder.finish()
                writer.commit()
        except BaseException:
            writer.abort()
            raise
        if settings.manifest and not limit and not self.spec.dry_run:
            self._manifest(store, path, settings, tally, encoder, export, gzip_output=gzip_output)
        if limit:
            return self._over_limit(tally, f"{limit}; nothing was written", written=0)
        return self._succeeded(tally, 0 if self.spec.dry_run else encoder.bytes, store.describe(path))

    def _manifest(self, store: FileStore, path: str, settings: FileSettings, tally: Tally, encoder: RecordEncoder,
                  export: RecordSource, *, gzip_output: bool) -> None:
        """PATH.manifest.json, written (create-only, as the data) once the data is committed: the mark that the
        file is complete, and what it holds. Should its write fail, the run fails and the watermark stays: the
        next run exports the rows again, under a new name, with its manifest."""
        since = self.since
        manifest = {"object": store.describe(path), "path": path, "runId": self.request.run_id,
                    "integration": self.request.integration.model_dump(), "rows": tally.written,
                    "rejected": tally.rejected, "bytes": encoder.bytes, "format": settings.format,
                    "compression": "gzip" if gzip_output else "none", "encoding": settings.encoding,
                    "columns": self.mapper.columns(), "since": since, "watermark": export.watermark,
                    "completedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        writer = store.open_write(f"{path}.manifest.json", overwrite=self.source.since != "lastRun",
                                  content_type="application/json")
        try:
            writer.write(json.dumps(manifest, indent=2).encode() + b"\n")
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def _tabulated(self, pages: Pages, tally: Tally, encoder: RecordEncoder) -> None:
        """The export into CSV rows, a page at a time (mapped column by column, see sync/columns.py)."""
        for block in numbered(pages):
            tally.read += block.size
            table = tabulate(self.mapper, block)
            for number, reason in table.refused:
                tally.reject(number, f"{tally.label(number)}: {reason}")
            columns = _writable(block.numbers, table, encoder.settings, tally)
            tally.written += len(columns[0])
            encoder.add_columns(columns)
            self.report("export", tally)

    def _to_salesforce(self, export: RecordSource) -> SyncResult:
        target = self.spec.destination.salesforce
        provider = self.request.connection.salesforce
        if target is None or provider is None:
            raise PermanentError("spec.destination.salesforce needs a salesforce Connection",
                                 reason=reasons.INVALID_SPEC)
        if self.spec.dry_run:
            return self._dry_run(export, f"Salesforce {target.object}")
        tally = Tally(label=export.label)
        destination = open_salesforce_object(provider, self.credentials.role("external"), target,
                                             self.mapper.columns())
        key = destination.key
        stopped: PartlyApplied | None = None
        report = WriteReport()
        with InboundSpool() as spool:
            records = LastRowWins(self._mapped(export, tally), key, spool,
                                  case_sensitive=destination.case_sensitive()) if key else None
            try:
                destination.write(records or self._mapped(export, tally), report)
            except PartlyApplied as error:
                stopped = error
        tally.written = report.written
        for index, reason in report.failed:
            number = records.number(index) if records and index >= 0 else index + 1
            tally.reject(number, f"{tally.label(number)}: {reason}")
        limit = tally.over_limit(self.spec)
        if stopped:
            result = self._stopped(tally, stopped, records.left_out if records else 0)
        elif limit:  # upserts are idempotent by external id: the next run repairs what this one wrote
            result = self._over_limit(tally, limit, written=tally.written)
        else:
            result = self._succeeded(tally, 0, f"Salesforce {target.object} ({report.api_calls} API calls)")
        if records:
            result.duplicate_keys, result.duplicates = records.left_out, records.samples()
        return result

    def _stopped(self, tally: Tally, error: PartlyApplied, left_out: int) -> SyncResult:
        """A write to Salesforce that stopped part way: what was applied stays, and the run says how much."""
        refused = len(error.report.failed) - error.unprocessed
        unsent = tally.read - tally.written - tally.rejected - left_out
        message = (f"{error.message}; {tally.written} records were applied, {refused} refused, {error.unprocessed} "
                   f"not processed by that job and {max(unsent, 0)} not sent: the applied records stay (Salesforce "
                   "keeps what a job processed), the next run sends the export again" + tally.first())
        return SyncResult(result="Failed", reason=error.reason, message=message, rows_read=tally.read,
                          rows_written=tally.written, rows_rejected=tally.rejected, rejected=tally.samples)

    def _to_webhook(self, export: RecordSource, target: WebhookDestination) -> SyncResult:
        """Batches POSTed in order as they fill; a refused batch fails the run (earlier batches stay delivered,
        and the watermark stays, so the next run re-sends them: receivers upsert by the record key)."""
        provider = self.request.connection.webhook
        if provider is None:
            raise PermanentError("spec.destination.webhook needs a webhook Connection", reason=reasons.INVALID_SPEC)
        if self.spec.dry_run:
            return self._dry_run(export, f"webhook {provider.url}")
        tally = Tally(label=export.label)
        receiver = open_webhook(provider, self.credentials.role("external"), run_id=self.request.run_id,
                                dataset=self.source.dataset, batch_size=target.batch_size)
        report = receiver.write(self._mapped(export, tally), WriteReport())
        limit = tally.over_limit(self.spec)
        if limit:
            return self._over_limit(tally, limit, written=tally.written)
        return self._succeeded(tally, report.bytes, f"webhook {provider.url} ({report.batches} batches)")

    def _dry_run(self, export: RecordSource, destination: str) -> SyncResult:
        tally = Tally(label=export.label)
        for _ in self._mapped(export, tally):
            pass
        return self._succeeded(tally, 0, destination)

    def _over_limit(self, tally: Tally, message: str, *, written: int) -> SyncResult:
        return SyncResult(result="Failed", reason=reasons.TOO_MANY_REJECTED_ROWS, message=message, rows_read=tally.read,
                          rows_written=written, rows_rejected=tally.rejected, rejected=tally.samples)

    def _succeeded(self, tally: Tally, size: int, destination: str) -> SyncResult:
        return SyncResult(
            result="Succeeded",
            reason=(reasons.DRY_RUN if self.spec.dry_run else reasons.ROWS_REJECTED if tally.rejected
                    else reasons.SYNCED),
            message="dry run: nothing written" if self.spec.dry_run else "",
            rows_read=tally.read, rows_written=tally.written, rows_rejected=tally.rejected, bytes=size,
            dry_run=self.spec.dry_run, destination=destination, rejected=tally.samples,
        )


