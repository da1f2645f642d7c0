"""The Integration resource: what to sync, in which direction, on which schedule."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from walkme_dic.api.common import (
    ApiModel,
    Condition,
    LocalObjectReference,
    SecretKeySelector,
    StatusModel,
    parse_duration,
)
from walkme_dic.schedule import MAX_TIME_ZONE_LENGTH, schedule_problem, time_zone_problem

Direction = Literal["Inbound", "Outbound"]
FieldType = Literal["string", "number", "boolean", "date", "timestamp"]
EmptyValues = Literal["keep", "clear"]
EMPTY_VALUES = ("Inbound: what an empty value (a CSV cell empty once trimmed; a JSON null, empty text or absent "
                "field) does to the WalkMe attribute: keep leaves it as it is (nothing is sent for it); clear sends "
                "null, which clears it (docs/walkme-api.md, A8). The key and the activeField are never empty: such a "
                "row is rejected. Outbound to Salesforce, the same for the record's field: keep sends nothing for it "
                "(Salesforce keeps its value), clear sets it to null (null in sObject Collections JSON, #N/A in a "
                "Bulk API 2.0 CSV)")
EMPTY_VALUES_OUTBOUND = ("mapping.emptyValues: clear is for Inbound integrations (WalkMe user attributes) and Outbound "
                         "ones to Salesforce; a file writes an empty text as it is and a missing value as null "
                         "(CSV: destination.file.nullValue), a webhook record leaves an empty value out")
RunResult = Literal["Running", "Succeeded", "Failed", "Skipped"]
RunTrigger = Literal["Created", "SpecChanged", "Schedule", "Requested", "Retry"]
MODSTAMP = "SystemModstamp"  # the Salesforce field incremental inbound reads filter and order on
DEFAULT_LOOKBACK_SECONDS = 300  # since: lastRun reads changes at least this old (see SalesforceSource)
PARENT_SEGMENT = ".."
GZIP_SUFFIX = ".gz"
COMPRESSION_NAMED = ("destination.file: compression gzip needs a path ending in .gz, and compression none a path "
                     "that does not (readers such as DuckDB, pandas and pyarrow go by the suffix); or use "
                     "compression auto, which gzips exactly the paths ending in .gz")
MAX_PATH_LENGTH = 1024  # S3's and GCS's limit for an object name (bytes); it also bounds the CEL rule's cost
UNDER_THE_CONNECTION = "a file's path stays under its Connection's prefix or folder"
NAMED_SEGMENTS = ("every segment of a path is a name: no '.', no empty segment (a//b.csv, a trailing /), so that "
                  "one object has one path on every store")
MAX_WALKME_PROPERTIES = 100  # WalkMe: at most 100 properties across all integrations of an account
EXPORT_FILES_NAMED = ("source.walkme: dataset exportFiles needs exportFiles (the Connection of the bucket WalkMe "
                      "exports into), and exportFiles goes with dataset exportFiles only")
WALKME_CONNECTION_NEEDED = ("walkmeConnectionRef: name the WalkMe account Connection; only an Outbound integration "
                            "with source.walkme.dataset exportFiles goes without one (it reads files from a bucket "
                            "and calls no WalkMe API)")
WALKME_TYPES_MESSAGE = ("type boolean or timestamp: WalkMe user attributes are String, Number or Date; map a "
                        "true/false column as type string, or as the activeField, and a time as type date or string")


class FileSettings(ApiModel):
    """A file in the external Connection's bucket or container."""

    path: str = Field(
        min_length=1, max_length=MAX_PATH_LENGTH,
        description="Path under the connection's prefix. Outbound paths may use {date}, {time}, {runId}, "
        "{slot} and {dataDate}, e.g. exports/dt={dataDate}/users-{runId}.csv: {date} and {time} are the run's "
        "(its schedule slot, UTC), {dataDate} the UTC day of the time its data starts at (the watermark a since: "
        "lastRun run exports from, or a fixed since; {date} when it reads from the beginning), as a scheduler's "
        "data interval start: a daily run shortly after midnight files the day before. An incremental export "
        "(since: lastRun) never overwrites an earlier run's file: a path two runs can share fails the second with "
        "DestinationExists, so put {runId} in it.",
    )
    format: Literal["csv", "jsonl"] = Field(default="csv", description="File format.")
    compression: Literal["auto", "gzip", "none"] = Field(
        default="auto", description="auto detects gzip on read and uses the .gz suffix on write.",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field delimiter.")
    manifest: bool = Field(
        default=False,
        description="Outbound: after the data, write PATH.manifest.json (run id, rows, columns, format, "
        "compression, encoding, the export's since and watermark): a consumer that reads only files with a "
        "manifest never reads a file whose run did not finish.",
    )
    encoding: str = Field(
        default="utf-8", min_length=1,
        description="Text encoding, any codec Python knows (utf-8, latin-1, cp1252, utf-16 with its byte-order "
        "mark, ...); utf-8 also accepts a byte-order mark.",
    )
    null_value: str = Field(
        default="", max_length=16,
        description="Outbound CSV: the cell written for a null (no value). Default empty, so that a null and an "
        "empty text read alike; a token such as \\N keeps them apart (DuckDB nullstr, pandas na_values, pyarrow "
        "null_values): an empty text is then an empty cell, and a record holding the token itself as text is "
        "rejected (it would read back as null). JSON lines always write null.",
    )

    @model_validator(mode="after")
    def _null_value_is_a_plain_cell(self) -> FileSettings:
        if any(special in self.null_value for special in (self.delimiter, '"', "\r", "\n")):
            raise ValueError(f"nullValue: {self.null_value!r} holds the delimiter, a quote or a line end: the CSV "
                             "writer would quote it, and a reader may take a quoted cell for text")
        return self

    @field_validator("path")
    @classmethod
    def _under_the_connection(cls, value: str) -> str:
        segments = value.lstrip("/").split("/")
        if PARENT_SEGMENT in segments:
            raise ValueError(f"path: {value!r} has a {PARENT_SEGMENT!r} segment; {UNDER_THE_CONNECTION}")
        if "." in segments or "" in segments:
            raise ValueError(f"path: {value!r}: {NAMED_SEGMENTS}")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(f"encoding: {value!r} is not a text encoding Python knows "
                             "(e.g. utf-8, latin-1, cp1252, utf-16)") from None
        if not info._is_text_encoding:  # type: ignore[attr-defined]
            raise ValueError(f"encoding: {value!r} is a byte transform, not a text encoding")
        return value


class SalesforceSource(ApiModel):
    """Rows read from Salesforce: a SOQL query, or an object and its fields."""

    soql: str | None = Field(default=None, description="A SOQL query, e.g. SELECT Id, Email FROM Contact.")
    object: str | None = Field(default=None, description="sObject to read, e.g. Contact (with fields).")
    fields: list[str] | None = Field(default=None, description="Fields of object to read.")
    where: str | None = Field(default=None, description="Optional SOQL WHERE clause used with object.")
    since: str | None = Field(
        default=None,
        description="Read incrementally (with object and fields): lastRun reads the records whose SystemModstamp "
        "is at or after status.watermark (the first run: any) and more than incrementalLookbackSeconds before the "
        "run began by the org's clock; that time becomes the next watermark, so every change is read once, by the "
        "first run that starts after the change's transaction can have committed. An RFC 3339 time reads every "
        "record modified since then, on every run. Leave out to read every record on every run. "
        "Annotate integrations.walkme.io/full-resync=<new value> to read everything once more.",
    )
    incremental_lookback_seconds: int = Field(
        default=DEFAULT_LOOKBACK_SECONDS, ge=0, le=86400,
        description="With since: lastRun, the longest a Salesforce transaction may stay open: each run reads the "
        "changes stamped at least this long before it began, so a change whose transaction commits after an "
        "earlier run's read (stamped before records that run read) is still read, once. Long batch Apex jobs or "
        "others' big data loads need more; 0 reads up to the run's start and can miss changes committing during it.",
    )

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        return None if value is None else since_value(value)

    @model_validator(mode="after")
    def _soql_or_object(self) -> SalesforceSource:
        if bool(self.soql) == bool(self.object):
            raise ValueError("salesforce: set either soql, or object with fields")
        if self.object and not self.fields:
            raise ValueError("salesforce.fields: list the fields to read from the object")
        if self.soql and self.since:
            raise ValueError("salesforce.since: set object and fields to read incrementally (the operator adds "
                             "the SystemModstamp condition to that query); a soql query is read whole on every run")
        return self

    def query(self, since: str | None = None, until: str | None = None) -> str:
        """The SOQL to run; with ``since`` set on this source, SystemModstamp is selected too, and with a
        ``since`` time given only records modified at or after it, with ``until`` only before it (whole seconds,
        so consecutive ranges [since, until) meet without a gap or an overlap)."""
        if self.soql:
            return self.soql
        fields = list(self.fields or [])
        if self.since and MODSTAMP.lower() not in {f.lower() for f in fields}:
            fields.append(MODSTAMP)
        conditions = [self.where] if self.where else []
        bounds = ([f"{MODSTAMP} >= {soql_datetime(since)}"] if since else []) + \
            ([f"{MODSTAMP} < {soql_datetime(until)}"] if until else [])
        if bounds:
            conditions = [f"({c})" for c in conditions] + bounds
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {', '.join(fields)} FROM {self.object}{where}"


def since_value(value: str) -> str:
    """``lastRun`` or an RFC 3339 time, else a ValueError naming the field."""
    if value != "lastRun":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as error:
            raise ValueError(f"since: {value!r} is neither lastRun nor an RFC 3339 time") from error
    return value


def soql_datetime(value: str) -> str:
    """An RFC 3339 time as a SOQL dateTime literal in UTC, e.g. 2026-11-26T06:00:00Z."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforceDestination(ApiModel):
    """Rows written to a Salesforce object."""

    object: str = Field(min_length=1, description="sObject to write, e.g. Contact or WalkMe_Usage__c.")
    operation: Literal["upsert", "update", "insert"] = Field(
        default="upsert", description="upsert matches on externalIdField; update matches on Id.",
    )
    external_id_field: str | None = Field(default=None, description="External id field used by upsert.")
    bulk_threshold: int = Field(
        default=2000, ge=1,
        description="At or above this many rows the write uses Bulk API 2.0; below, sObject Collections.",
    )

    @model_validator(mode="after")
    def _upsert_needs_external_id(self) -> SalesforceDestination:
        if self.operation == "upsert" and not self.external_id_field:
            raise ValueError("salesforce.externalIdField: upsert needs the external id field to match on")
        return self


class ExportFilesSource(ApiModel):
    """The CSV files WalkMe's Data Integration Center exports (a custom report) into a bucket, container or SFTP
    folder."""

    connection_ref: LocalObjectReference = Field(
        description="The Connection (s3, azureBlob, gcs or sftp, in this namespace) of the bucket, container or "
        "SFTP folder WalkMe writes its export files into; a run reads it with that Connection's credentials. Cannot "
        "change after creation.",
    )
    prefix: str = Field(
        default="", max_length=MAX_PATH_LENGTH,
        description="Read only the objects whose path (under that Connection's prefix) starts with this, e.g. "
        "walkme/usage/. Every new object there is read once: one whose ETag (GCS: generation; SFTP: size and "
        "mtime) was not read before, modified at or after status.watermark.",
    )
    format: Literal["csv"] = Field(default="csv", description="WalkMe exports CSV: a header row of the report's "
                                   "columns, then one row per record (gzip detected).")


class ExportedFile(StatusModel):
    """An export file read by a successful run, modified at or after status.watermark."""

    path: str = Field(description="Its path under the export Connection's prefix.")
    fingerprint: str = Field(description="Its ETag (GCS: generation) when it was read.")
    modified: str = Field(json_schema_extra={"format": "date-time"}, description="Its last-modified time.")


INSIGHTS_DATASETS = ("users", "events", "sessions", "report")  # read from spec.walkme.insightsExportUrl


class WalkMeSource(ApiModel):
    """Insights data read from WalkMe (outbound)."""

    dataset: Literal["exportFiles", "activityLog", "users", "events", "sessions", "report"] = Field(
        description="What to export. exportFiles reads the CSV files WalkMe's Data Integration Center writes into "
        "your bucket (exportFiles says where), each new file once; activityLog is WalkMe's documented account "
        "activity log (GET /public/v1/activitylog: who did what in the account, for audit); users, events, sessions "
        "and report read an Insights export endpoint WalkMe does not publish (docs/walkme-api.md, part B).",
    )
    export_files: ExportFilesSource | None = Field(
        default=None, description="For dataset exportFiles: the bucket WalkMe's export files land in.",
    )
    incremental_lookback_seconds: int | None = Field(
        default=None, ge=0, le=86400,
        description="users, events, sessions with since: lastRun: each run exports the records stamped at or "
        "after status.watermark and more than this long before the run began (by the Job's clock); that time "
        "becomes the next watermark, so a record stamped at the watermark is the next run's and one that reaches "
        "the export up to this long after its timestamp is still exported, once. Unset: 300. activityLog: how long "
        "before the run its reading stops (unset: a minute). A longer lookback delays records, never duplicates "
        "them.",
    )
    report_id: str | None = Field(default=None, description="Saved report id; required for dataset report.")
    since: str = Field(
        default="lastRun",
        description="lastRun exports only what changed since the previous successful run (the watermark); "
        "an RFC 3339 time exports everything since then. activityLog: lastRun's first run reads WalkMe's default, "
        "the last hour; every run reads up to a minute before it began. exportFiles: lastRun's first run reads "
        "every file under the prefix, later runs the files not read yet; a time reads the files modified since.",
    )

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        return since_value(value)

    @model_validator(mode="after")
    def _report_needs_id(self) -> WalkMeSource:
        if self.dataset == "report" and not self.report_id:
            raise ValueError("walkme.reportId: dataset report needs the saved report's id")
        if (self.dataset == "exportFiles") != (self.export_files is not None):
            raise ValueError(EXPORT_FILES_NAMED)
        return self


class WalkMeDestination(ApiModel):
    """User attributes written to WalkMe (inbound)."""

    integration_token_secret_ref: SecretKeySelector = Field(
        description="Secret key holding the End User Update API integration token.",
    )
    user_id_property: str = Field(
        min_length=1, description="WalkMe user identifier property the key is written to, e.g. uuid or email.",
    )
    system: str | None = Field(
        default=None, description="Deprecated, does nothing: WalkMe binds the system to the integration token when "
        "the integration is set up in the console (the request carries no system). Kept so that existing manifests "
        "stay valid; an Integration that sets it gets a DeprecatedField Warning Event.")
    environment: str | None = Field(
        default=None, description="Deprecated, does nothing: WalkMe binds the environment (Production, QA) to the "
        "integration token in the console. Kept so that existing manifests stay valid; an Integration that sets it "
        "gets a DeprecatedField Warning Event.")

    def deprecated_fields(self) -> list[str]:
        """The deprecated fields this destination sets."""
        return [name for name in ("system", "environment") if getattr(self, name) is not None]


SOURCE_KINDS = ("file", "salesforce", "walkme")


class Source(ApiModel):
    """Where rows come from. Exactly one block; inbound reads file or salesforce, outbound reads walkme."""

    file: FileSettings | None = Field(default=None, description="A file in S3 or Azure Blob.")
    salesforce: SalesforceSource | None = Field(default=None, description="A Salesforce query.")
    walkme: WalkMeSource | None = Field(default=None, description="WalkMe Insights data.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        _only_block(self, SOURCE_KINDS, "source")
        return self

    @property
    def kind(self) -> str:
        return _only_block(self, SOURCE_KINDS, "source")


DESTINATION_KINDS = ("file", "salesforce", "walkme", "webhook")


class Destination(ApiModel):
    """Where rows go. Exactly one block; inbound writes walkme, outbound writes file or salesforce."""

    file: FileSettings | None = Field(default=None, description="A file in S3 or Azure Blob.")
    salesforce: SalesforceDestination | None = Field(default=None, description="A Salesforce object.")
    walkme: WalkMeDestination | None = Field(default=None, description="WalkMe user attributes.")
    webhook: WebhookDestination | None = Field(default=None, description="Signed JSON batches to a webhook "
                                               "Connection (outbound).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Destination:
        _only_block(self, DESTINATION_KINDS, "destination")
        if self.file is not None and self.file.compression != "auto" and \
                (self.file.compression == "gzip") != self.file.path.endswith(GZIP_SUFFIX):
            raise ValueError(COMPRESSION_NAMED)
        return self

    @property
    def kind(self) -> str:
        return _only_block(self, DESTINATION_KINDS, "destination")


class WebhookDestination(ApiModel):
    """Mapped records POSTed as signed JSON batches to the webhook Connection's URL (outbound)."""

    batch_size: int = Field(default=500, ge=1, le=10_000, description="Records per POST.")


class KeyMapping(ApiModel):
    """The identity column: how a source row finds its destination record."""

    source: str = Field(min_length=1, description="Source column or field holding the identity.")
    destination: str = Field(min_length=1, description="Destination attribute or field it is written to.")
    case_fold: bool = Field(
        default=False,
        description="Keys are trimmed and their case is kept: ALICE@x.com and alice@x.com are two users. true "
        "compares and sends every key case-folded (Unicode case folding: ALICE@x.com becomes alice@x.com, Straße "
        "strasse), so they are one key and the last row wins. Users imported before with other case stay in WalkMe.",
    )


class FieldMapping(ApiModel):
    """One mapped column."""

    source: str = Field(min_length=1, description="Source column or field.")
    destination: str = Field(min_length=1, description="Destination attribute or field.")
    type: FieldType = Field(
        default="string", description="Value type: string, number, boolean, date (YYYY-MM-DD: a time with an "
        "offset is the day it is in UTC) or timestamp (outbound: RFC 3339 in UTC, e.g. 2026-11-21T04:30:00Z; a time "
        "with an offset is converted to UTC, one without is taken as UTC).",
    )
    empty_values: EmptyValues | None = Field(
        default=None, description="This field's empty-value policy, keep or clear; unset: mapping.emptyValues.",
    )
    trim: bool = Field(
        default=False,
        description="Outbound to a file, type string: strip the spaces around this field's text (a text of spaces "
        "becomes an empty text, not null). Unset, text is written as it is. Inbound always trims.",
    )


class Mapping(ApiModel):
    """How source columns become destination fields."""

    key: KeyMapping = Field(description="Identity used for matching and upserts.")
    fields: list[FieldMapping] = Field(default_factory=list, description="Other columns to copy.")
    empty_values: EmptyValues = Field(default="keep", description=f"{EMPTY_VALUES}. A field may say otherwise.")
    active_field: str | None = Field(
        default=None,
        description="Inbound: the source column holding true/false. Users are never deleted from WalkMe; "
        "set active=false and segment on active = true to retire them.",
    )

    def clears(self, field: FieldMapping) -> bool:
        """Whether an empty value of ``field`` clears its attribute (its own policy, else the mapping's)."""
        return (field.empty_values or self.empty_values) == "clear"

    def property_count(self) -> int:
        """Destination properties a record carries: the key, the fields, the active column."""
        return 1 + len(self.fields) + (1 if self.active_field else 0)

    @model_validator(mode="after")
    def _unique_destinations(self) -> Mapping:
        names = [self.key.destination] + [f.destination for f in self.fields]
        if self.active_field:
            names.append(self.active_field)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mapping: destination {', '.join(duplicates)} is mapped more than once")
        return self


class Toleration(ApiModel):
    """A Kubernetes toleration for the sync Job's pod."""

    key: str | None = Field(default=None, description="Taint key.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal.")
    value: str | None = Field(default=None, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect.",
    )
    toleration_seconds: int | None = Field(default=None, description="For NoExecute: how long to stay bound.")


SPOOL_STORAGE_REQUEST = "1Gi"  # ephemeral storage of a Job whose spec names none: ~10M inbound rows of spool
SPOOL_STORAGE_LIMIT = "8Gi"  # ~80M inbound rows of spool


class ResourceRequirements(ApiModel):
    """CPU and memory for the sync container, as Kubernetes quantities."""

    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "128Mi"}, description="Requested resources.",
    )
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "512Mi"}, description="Resource limits.")


class JobSettings(ApiModel):
    """How sync Jobs run."""

    service_account_name: str | None = Field(
        default=None, description="ServiceAccount of the Job's pod (e.g. for IRSA or workload identity).",
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description=f"Resources. Without ephemeral-storage in requests or limits, the Job requests "
                    f"{SPOOL_STORAGE_REQUEST} of it and is limited to {SPOOL_STORAGE_LIMIT}, also the sizeLimit of "
                    "/tmp, where an inbound run spools ~100 bytes a row.",
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector for the pod.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations for the pod.")
    active_deadline_seconds: int = Field(default=3600, ge=30, description="Kill a run after this many seconds.")
    backoff_limit: int = Field(default=2, ge=0, le=10, description="Pod retries before a run counts as failed.")


class IntegrationSpec(ApiModel):
    """A sync between WalkMe and one external system."""

    direction: Direction = Field(description="Inbound: into WalkMe user attributes. Outbound: out of WalkMe.")
    connection_ref: LocalObjectReference = Field(
        description="The external Connection (a file store such as s3, azureBlob or sftp, or salesforce). Cannot "
        "change after creation.",
    )
    walkme_connection_ref: LocalObjectReference | None = Field(
        default=None,
        description="The WalkMe account Connection (the WalkMe API: token, user data, activity log). Required, "
        "except with source.walkme.dataset exportFiles, which reads WalkMe's export files from a bucket and calls no "
        "WalkMe API: leave it out there, and runs need no WalkMe API key and do not wait for that Connection's probe; "
        "if given, it must exist and be Ready like any referenced Connection.",
    )
    source: Source = Field(description="Where rows come from.")
    destination: Destination = Field(description="Where rows go.")
    mapping: Mapping = Field(description="Key and field mapping.")
    schedule: str | None = Field(
        default=None,
        description="Cron schedule, e.g. '0 */6 * * *'. Leave out to run only on create, change or request.",
    )
    time_zone: str = Field(default="UTC", max_length=MAX_TIME_ZONE_LENGTH,
                           description="IANA time zone the schedule is read in.")
    suspend: bool = Field(default=False, description="Stop starting new runs; a running one finishes.")
    dry_run: bool = Field(default=False, description="Read, map and validate, report counts, write nothing.")
    run_history_limit: int = Field(default=10, ge=1, le=100, description="How many runs status keeps.")
    max_rejected_rows: int | None = Field(
        default=None, ge=0,
        description="Fail the run, writing nothing, when more rows than this are rejected. With this and "
        "maxRejectedPercent unset there is no limit, except for an incremental export (since: lastRun), which "
        "fails on any rejected row: its watermark would move past the row for good.",
    )
    max_rejected_percent: float | None = Field(
        default=None, ge=0, le=100, description="Fail the run, writing nothing, above this share of rejects.",
    )
    job: JobSettings = Field(default_factory=JobSettings, description="Sync Job settings.")
    fail_on_empty_source: bool = Field(
        default=False,
        description="Inbound: fail the run when the source has no data rows (by default it succeeds with "
        "reason EmptySource and a Warning Event).",
    )
    change_detection: bool = Field(
        default=True,
        description="Inbound from a file: send WalkMe only the users that are new or changed since the last "
        "successful run, by comparing each user's mapped record with a digest of what was sent (kept as "
        "walkme-dic/state/<uid>/sent.bin on the source Connection, which needs write access to that prefix; "
        "no key or value in clear). false sends every user, as without it. Salesforce sources do not use it "
        "(since: lastRun reads only changed records), nor does a local `walkme-dic run` (no Integration uid).",
    )
    full_resend_interval: str = Field(
        default="168h",
        description="Inbound with changeDetection: send every user once this long after the last full send "
        "(WalkMe cannot be read back, so this heals anything lost on its side), e.g. 168h (a week) or 24h; "
        "the full-resync annotation asks for one at once.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = None if value is None else schedule_problem(value)
        if problem:
            raise ValueError(f"schedule: {problem} (e.g. '0 */6 * * *' or @daily)")
        return value

    @field_validator("full_resend_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        try:
            interval = parse_duration(value)
        except ValueError as error:
            raise ValueError(f"fullResendInterval: {error}") from None
        if interval.total_seconds() < 60:
            raise ValueError(f"fullResendInterval: {value!r} is under a minute; use e.g. 24h or 168h "
                             "(or changeDetection: false to send every user on every run)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        problem = time_zone_problem(value)
        if problem:
            raise ValueError(f"timeZone: {problem}")
        return value

    def reads_export_files(self) -> bool:
        """Outbound from WalkMe's export files (dataset exportFiles): a bucket is read, no WalkMe API called."""
        return self.source.walkme is not None and self.source.walkme.export_files is not None

    @model_validator(mode="after")
    def _sides_match_direction(self) -> IntegrationSpec:
        source, destination = self.source.kind, self.destination.kind
        if self.walkme_connection_ref is None and not self.reads_export_files():
            raise ValueError(WALKME_CONNECTION_NEEDED)
        if self.direction == "Inbound":
            if source == "walkme":
                raise ValueError("source: an Inbound integration reads file or salesforce, not walkme")
            if destination != "walkme":
                raise ValueError("destination: an Inbound integration writes walkme user attributes")
        else:
            if source != "walkme":
                raise ValueError("source: an Outbound integration reads walkme")
            if destination == "walkme":
                raise ValueError("destination: an Outbound integration writes file, salesforce or webhook, not walkme")
        if self.mapping.active_field and self.direction == "Outbound":
            raise ValueError("mapping.activeField: only Inbound integrations have an active column")
        if self.direction == "Outbound" and self.destination.salesforce is None and "clear" in (
                self.mapping.empty_values, *(f.empty_values for f in self.mapping.fields)):
            raise ValueError(EMPTY_VALUES_OUTBOUND)
        booleans = [f.destination for f in self.mapping.fields if f.type in ("boolean", "timestamp")]
        if self.direction == "Inbound" and booleans:
            raise ValueError(f"mapping.fields: {', '.join(booleans)} {WALKME_TYPES_MESSAGE}")
        properties = self.mapping.property_count()
        if self.direction == "Inbound" and properties > MAX_WALKME_PROPERTIES:
            raise ValueError(f"mapping: {properties} WalkMe properties (key + fields + activeField); WalkMe allows "
                             f"at most {MAX_WALKME_PROPERTIES} properties per account: map fewer fields")
        return self


class RunRecord(StatusModel):
    """One sync run, newest first in status.runs."""

    name: str = Field(description="Run id; also the Job name.")
    trigger: RunTrigger = Field(description="What started it.")
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"}, description="Start.")
    completion_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="End.",
    )
    result: RunResult = Field(description="Running, Succeeded, Failed or Skipped (source unchanged).")
    rows_read: int = Field(default=0, description="Rows read from the source.")
    lines_read: int | None = Field(
        default=None, description="Inbound from a file: its physical lines, the header and blank lines included; "
        "linesRead = header (1 for CSV) + blankLines + continuationLines + rowsRead, or the run fails with "
        "LinesUnaccounted.",
    )
    blank_lines: int | None = Field(default=None, description="Inbound from a file: blank lines (counted, not rows).")
    continuation_lines: int | None = Field(
        default=None, description="Inbound from a file: lines after the first of rows whose quoted cells hold line "
        "ends (a row over 3 lines adds 2).",
    )
    rows_written: int = Field(default=0, description="Rows written (0 for a dry run).")
    rows_rejected: int = Field(default=0, description="Rows rejected by validation or refused by the destination.")
    duplicate_keys: int | None = Field(
        default=None, description="Rows left out because a later row has the same key (the last wins): inbound, "
        "and outbound to Salesforce (the external id, or Id for update).",
    )
    duplicate_rows: list[int] | None = Field(
        default=None, description="The first rows left out as duplicates: a file's lines, a query's or export's "
        "record numbers.",
    )
    bytes: int = Field(default=0, description="Bytes read or written.")
    sent: int | None = Field(default=None, description="Inbound with changeDetection: users sent, new or changed "
                             "(all of them on a full send); a dry run: that would be sent.")
    unchanged: int | None = Field(default=None, description="Inbound with changeDetection: users not sent because "
                                  "WalkMe was sent exactly this record before.")
    users_kept: int | None = Field(default=None, description="Inbound with changeDetection: users this Integration "
                                   "sent before that are not in this file; WalkMe keeps them (inbound never deletes).")
    full_send: str | None = Field(default=None, description="Inbound: why this run sent every user: NoState, "
                                  "StateUnreadable, ForeignState, MappingChanged, Interval, Requested or Disabled.")
    rejected_report: str | None = Field(
        default=None, description="Where every rejected row of this run is listed (a CSV of line or record and "
        "reason, no cell values): walkme-dic/rejected/INTEGRATION/RUN.csv on the file Connection of the run "
        "(the source inbound, the destination outbound), kept until deleted.",
    )
    message: str = Field(default="", description="Outcome for humans; for failures, the reason.")
    requested_at: str | None = Field(
        default=None, description="Value of the requested-at annotation this run was started for, if any.",
    )


class QueuedRun(StatusModel):
    """A due run waiting for the cap on concurrent runs (operator-wide or per namespace)."""

    trigger: str = Field(description="What made it due: Schedule, Requested, SpecChanged or Created.")
    message: str = Field(description="Which cap is reached, for humans.")


class LastResult(StatusModel):
    """Outcome of the most recent finished run (the Synced condition mirrors it)."""

    result: RunResult = Field(description="Succeeded, Failed or Skipped.")
    reason: str = Field(description="CamelCase reason from the run, e.g. Synced or TooManyRejectedRows.")
    message: str = Field(default="", description="Counts or the failure, for humans.")
    dry_run: bool = Field(default=False, description="The run was a dry run and wrote nothing.")


class SideIdentity(StatusModel):
    """What a source or destination points at: the fields whose change makes it a different dataset or file."""

    identity: str = Field(description="For humans, e.g. walkme report 'r-1' or file 'exports/users-{date}.csv'.")
    restore_patch: str = Field(
        description="A JSON merge patch that sets the spec back to this identity (kubectl patch --type merge -p).",
    )


class IdentityChange(StatusModel):
    """A source or destination identity that a spec change replaced (newest first in status.identityHistory)."""

    side: Literal["source", "destination"] = Field(description="Which side changed.")
    identity: str = Field(description="The replaced identity, for humans.")
    restore_patch: str = Field(description="A JSON merge patch that sets the spec back to the replaced identity.")
    replaced_by: str = Field(description="The identity that replaced it.")
    replaced_at: str = Field(json_schema_extra={"format": "date-time"}, description="When the operator saw the change.")
    generation: int = Field(description="The Integration generation that brought the change.")


class IntegrationStatus(StatusModel):
    """What the operator last did for this integration."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling, Stalled, Synced.")
    bound_connection: str | None = Field(
        default=None, description="External Connection this integration was bound to at creation.",
    )
    last_schedule_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="Slot of the last scheduled run.",
    )
    next_schedule_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="Next scheduled slot.",
    )
    active_run: str | None = Field(default=None, description="Name of the run in progress, if any.")
    queued: QueuedRun | None = Field(default=None, description="A run that is due but waits for a free slot under "
                                     "the admin's cap on concurrent runs.")
    last_handled_requested_at: str | None = Field(
        default=None,
        description="Last value of the requested-at annotation whose run has finished (set with the run's "
                    "result, so `kubectl wait --for=jsonpath` on it waits for the run you asked for).",
    )
    last_run_generation: int | None = Field(
        default=None, description="Generation whose spec the last created run used.",
    )
    watermark: str | None = Field(
        default=None, description="Outbound cursor: data up to here was exported. Inbound from Salesforce with "
        "since: every change stamped before this time was read (the run's start by the org's clock, less "
        "incrementalLookbackSeconds). Outbound from exportFiles: every export file modified before this time was "
        "read (the newer ones read are in exportedFiles).",
    )
    last_handled_full_resync: str | None = Field(
        default=None, description="Last value of the full-resync annotation that started a run without the "
        "watermark and source fingerprint.",
    )
    source_fingerprint: str | None = Field(
        default=None, description="Inbound: ETag of the last imported file; an unchanged file is skipped.",
    )
    last_full_send_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"},
        description="Inbound: when the last run that sent every user finished (runs[].fullSend says why).",
    )
    full_send_requested: bool | None = Field(
        default=None, description="Inbound: the full-resync annotation asked for a full send that no run has made "
        "yet (a failed run leaves it set).",
    )
    exported_files: list[ExportedFile] | None = Field(
        default=None, description="Outbound from exportFiles: the files read by successful runs that were modified "
        "at or after watermark (older ones are all read); a file not listed here, or listed with another "
        "fingerprint, is read by the next run.",
    )
    bound_export_connection: str | None = Field(
        default=None, description="Outbound from exportFiles: the export Connection this integration was bound to "
        "at creation.",
    )
    last_result: LastResult | None = Field(default=None, description="Outcome of the last finished run.")
    last_success_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"},
        description="When the last Succeeded or Skipped run finished (feeds the overdue alert).",
    )
    source_identity: SideIdentity | None = Field(default=None, description="What spec.source points at now.")
    destination_identity: SideIdentity | None = Field(
        default=None, description="What spec.destination points at now.",
    )
    identity_history: list[IdentityChange] | None = Field(
        default=None,
        description="Source and destination identities replaced by spec changes, newest first (at most 10).",
    )
    runs: list[RunRecord] = Field(default_factory=list, description="Recent runs, newest first.")


def _only_block(model: ApiModel, names: tuple[str, ...], where: str) -> str:
    chosen = [n for n in names if getattr(model, n) is not None]
    if len(chosen) != 1:
        raise ValueError(f"{where}: set exactly one of {', '.join(names)} (found: {', '.join(chosen) or 'none'})")
    return chosen[0]
