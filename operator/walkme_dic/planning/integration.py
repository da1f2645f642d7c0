"""Integration reconciliation as a pure function: given what the operator sees, what should change.

`plan()` takes the Integration, its two Connections and its Jobs/Pods, and returns the new
status, at most one Job to create, and the Events to emit. It never talks to the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from walkme_dic import reasons
from walkme_dic.api.common import ConditionStatus, parse_duration
from walkme_dic.api.connection import EXPORT_FILE_PROVIDERS, FILE_PROVIDERS, INSIGHTS_EXPORT_NEEDED, ConnectionSpec
from walkme_dic.api.integration import (
    INSIGHTS_DATASETS,
    IntegrationSpec,
    IntegrationStatus,
    LastResult,
    QueuedRun,
    RunRecord,
)
from walkme_dic.api.run import IntegrationIdentity, SyncRequest, SyncResult, SyncState
from walkme_dic.conditions import find_condition, parse_time, rfc3339, set_condition
from walkme_dic.errors import validation_message, without_reason
from walkme_dic.jobs.naming import (
    ANNOTATION_FULL_RESYNC,
    ANNOTATION_REQUESTED_AT,
    RunKey,
    generation_key,
    requested_key,
    run_name,
    schedule_key,
)
from walkme_dic.jobs.results import JobSummary, PodSummary, awaiting_pod, read_result
from walkme_dic.planning.report_history import track_identities
from walkme_dic.schedule import due_slot, next_slot

JOB_APPEAR_GRACE = timedelta(seconds=120)
IDENTITY_REPLACED = {"source": reasons.SOURCE_REPLACED, "destination": reasons.DESTINATION_REPLACED}
POD_RESULT_GRACE = timedelta(seconds=60)
DUPLICATE_ROWS_KEPT = 5


@dataclass(frozen=True)
class IntegrationView:
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    annotations: dict[str, str]
    spec: dict[str, Any]
    status: IntegrationStatus
    secret_refusal: str | None = None  # a Secret the run would mount may not be used (tenancy.secret_refusal)


@dataclass(frozen=True)
class ConnectionView:
    """None of the fields when the Connection does not exist."""

    name: str
    exists: bool
    ready: bool = False
    message: str = ""
    spec: ConnectionSpec | None = None
    probing: bool = False  # no answer yet for its current spec: waiting on it is progress, not a fault


@dataclass(frozen=True)
class DestinationClaim:
    """An Outbound Integration's file: the Connection it writes through and the path it writes."""

    integration: str
    created: datetime
    connection: str
    path: str
    namespace: str = ""

    @classmethod
    def of(cls, name: str, created: datetime, spec: dict[str, Any], namespace: str = "") -> DestinationClaim | None:
        path = ((spec.get("destination") or {}).get("file") or {}).get("path")
        if spec.get("direction") != "Outbound" or not isinstance(path, str):
            return None
        return cls(name, created, (spec.get("connectionRef") or {}).get("name", ""), path.lstrip("/"), namespace)


@dataclass(frozen=True)
class RunCapacity:
    """Runs going now, and the admin's caps (None: no cap): --max-runs and --max-runs-per-namespace."""

    namespace_running: int = 0
    total_running: int = 0
    per_namespace: int | None = None
    total: int | None = None

    def full(self, namespace: str) -> str | None:
        """Why no run may start now, or None."""
        if self.per_namespace is not None and self.namespace_running >= self.per_namespace:
            return (f"queued: {self.namespace_running} runs are going in namespace {namespace!r}, its cap "
                    f"(chart value runs.maxPerNamespace) is {self.per_namespace}; it starts when one ends")
        if self.total is not None and self.total_running >= self.total:
            return (f"queued: {self.total_running} runs are going in the cluster, the operator's cap (chart value "
                    f"runs.max) is {self.total}; it starts when one ends")
        return None


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class FinishedRun:
    """For metrics: a run that finished in this reconcile."""

    result: SyncResult
    seconds: float


@dataclass
class Decision:
    status: IntegrationStatus
    status_changed: bool
    job: tuple[SyncRequest, RunKey] | None = None
    events: list[Event] = field(default_factory=list)
    finished: FinishedRun | None = None
    delete_jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Blocker:
    reason: str
    message: str
    stalled: bool
    pending: bool = False  # the answer is not in yet (a Connection's first probe): Ready=Unknown, no Warning


def plan(
    view: IntegrationView,
    external: ConnectionView,
    walkme: ConnectionView | None,
    jobs: list[JobSummary],
    pods: dict[str, list[PodSummary]],
    now: datetime,
    claims: Sequence[DestinationClaim] = (),
    capacity: RunCapacity = RunCapacity(),
    exports: ConnectionView | None = None,
) -> Decision:
    """``walkme``: None when the spec names no WalkMe Connection (dataset exportFiles may leave it out);
    ``claims``: the other Integrations of the namespace that write files (the older one keeps a path);
    ``capacity``: the runs going now against the admin's caps (a due run waits, status says so); ``exports``:
    for dataset exportFiles, the Connection of the bucket WalkMe exports into."""
    status = view.status.clone()
    decision = Decision(status=status, status_changed=False)
    try:
        spec = IntegrationSpec.model_validate(view.spec)
    except ValidationError as error:
        blocker = Blocker(reasons.INVALID_SPEC, validation_message(error), stalled=True)
        _warn_on_transition(view, blocker, decision)
        _set_conditions(status, view, None, blocker, now)
        return _finish(decision, view)

    if status.bound_connection is None:
        status.bound_connection = spec.connection_ref.name
    export_files = spec.source.walkme.export_files if spec.source.walkme else None
    if export_files is not None and status.bound_export_connection is None:
        status.bound_export_connection = export_files.connection_ref.name
    for side, message in track_identities(status, spec, view.name, view.namespace, view.generation, now):
        decision.events.append(Event("Normal", IDENTITY_REPLACED[side], message))
    if view.status.observed_generation != view.generation:  # once per generation
        decision.events += deprecation_warnings(spec)
    _observe_runs(status, view, spec, jobs, pods, now, decision)
    blocker = _blocker(status, spec, external, walkme) or _export_blocker(status, spec, exports) or \
        _conflict(view, claims) or _refused_secret(view)
    status.queued = None
    if blocker is None and not status.active_run and not spec.suspend:
        _start_run_if_due(status, view, spec, external, walkme, now, decision, capacity, exports)
    status.next_schedule_time = (
        rfc3339(next_slot(spec.schedule, spec.time_zone, now)) if spec.schedule and not spec.suspend else None
    )
    if blocker is not None:
        _warn_on_transition(view, blocker, decision)
    _set_conditions(status, view, spec, blocker, now)
    kept = {r.name for r in status.runs}
    decision.delete_jobs = sorted(j.name for j in jobs if j.state != "Running" and j.name not in kept)
    return _finish(decision, view)


def deprecation_warnings(spec: IntegrationSpec) -> list[Event]:
    """A Warning for fields the API keeps accepting although they do nothing."""
    walkme = spec.destination.walkme
    named = walkme.deprecated_fields() if walkme is not None else []
    if not named:
        return []
    fields = " and ".join(f"spec.destination.walkme.{name}" for name in named)
    return [Event("Warning", reasons.DEPRECATED_FIELD,
                  f"{fields} {'do' if len(named) > 1 else 'does'} nothing: WalkMe binds the system and environment to "
                  "the integration token when the integration is set up in the console, and the End User Update API "
                  "request carries neither. Remove the field; to import into another system or environment, use "
                  "that integration's token")]


def _warn_on_transition(view: IntegrationView, blocker: Blocker, decision: Decision) -> None:
    """One Warning Event when Ready turns False for a blocker's reason (stalled or waiting), none while it stays."""
    previous = find_condition(view.status.conditions, reasons.READY)
    if not blocker.pending and (previous is None or (previous.status, previous.reason) != ("False", blocker.reason)):
        decision.events.append(Event("Warning", blocker.reason, blocker.message))


def _finish(decision: Decision, view: IntegrationView) -> Decision:
    decision.status.observed_generation = view.generation
    decision.status_changed = decision.status != view.status
    return decision


def _blocker(
    status: IntegrationStatus, spec: IntegrationSpec, external: ConnectionView, walkme: ConnectionView | None,
) -> Blocker | None:
    bound = status.bound_connection
    if bound != spec.connection_ref.name:
        return Blocker(
            reasons.CONNECTION_REF_IMMUTABLE,
            f"spec.connectionRef changed from {bound!r} to {spec.connection_ref.name!r}, but the connection "
            f"of an Integration cannot change; set it back to {bound!r} or create a new Integration",
            stalled=True,
        )
    referenced = [("connectionRef", external), *([("walkmeConnectionRef", walkme)] if walkme is not None else [])]
    for role, connection in referenced:
        if not connection.exists:
            return Blocker(reasons.CONNECTION_NOT_FOUND,
                           f"spec.{role}: Connection {connection.name!r} does not exist", stalled=False)
    mismatch = _type_mismatch(spec, external, walkme)
    if mismatch:
        return Blocker(reasons.CONNECTION_TYPE_MISMATCH, mismatch, stalled=True)
    unpublished = _insights_export_missing(spec, walkme)
    if unpublished:
        return Blocker(reasons.INSIGHTS_EXPORT_NOT_CONFIGURED, unpublished, stalled=True)
    for _, connection in referenced:
        if not connection.ready:
            why = f": {connection.message}" if connection.message else ""
            return Blocker(reasons.CONNECTION_NOT_READY, f"Connection {connection.name!r} is not Ready{why}",
                           stalled=False, pending=connection.probing)
    return None


def _export_blocker(status: IntegrationStatus, spec: IntegrationSpec, exports: ConnectionView | None,
                    ) -> Blocker | None:
    """dataset exportFiles: its Connection is bound at creation, exists, is a bucket WalkMe exports into, is Ready."""
    files = spec.source.walkme.export_files if spec.source.walkme else None
    if files is None:
        return None
    field, name = "spec.source.walkme.exportFiles.connectionRef", files.connection_ref.name
    bound = status.bound_export_connection
    if bound != name:
        return Blocker(reasons.CONNECTION_REF_IMMUTABLE,
                       f"{field} changed from {bound!r} to {name!r}, but the export Connection of an Integration "
                       f"cannot change; set it back to {bound!r} or create a new Integration", stalled=True)
    if exports is None or not exports.exists:
        return Blocker(reasons.CONNECTION_NOT_FOUND, f"{field}: Connection {name!r} does not exist", stalled=False)
    if exports.spec and exports.spec.provider not in EXPORT_FILE_PROVIDERS:
        return Blocker(reasons.CONNECTION_TYPE_MISMATCH,
                       f"{field}: Connection {name!r} is a {exports.spec.provider} connection; WalkMe's Data "
                       f"Integration Center exports into a bucket, a container or an SFTP folder: "
                       f"{', '.join(EXPORT_FILE_PROVIDERS)}",
                       stalled=True)
    if not exports.ready:
        why = f": {exports.message}" if exports.message else ""
        return Blocker(reasons.CONNECTION_NOT_READY, f"{field}: Connection {name!r} is not Ready{why}",
                       stalled=False, pending=exports.probing)
    return None


def _conflict(view: IntegrationView, claims: Sequence[DestinationClaim]) -> Blocker | None:
    """Two Integrations writing one object overwrite each other's runs: the one created first keeps it.

    ``claims`` are those on the object this Integration writes, through its Connection or any other that
    reaches the same store (controllers.integration.destination_claims). Another namespace's Integration is
    not named: a tenant learns that the object is taken, not by whom."""
    mine = DestinationClaim.of(view.name, view.created, view.spec, view.namespace)
    if mine is None:
        return None
    order = (mine.created, mine.namespace, mine.integration)
    older = sorted((c for c in claims if (c.created, c.namespace, c.integration) < order), key=lambda c: c.created)
    if not older:
        return None
    first = older[0]
    who = (f"Integration {first.integration!r} already writes {mine.path!r} through Connection {first.connection!r}"
           if first.namespace == mine.namespace else
           f"an older Integration in another namespace already writes the object {mine.path!r} reaches through "
           f"Connection {mine.connection!r} (the same bucket, container or folder, and prefix)")
    return Blocker(reasons.DESTINATION_CONFLICT,
                   f"spec.destination.file.path: {who}; choose another path (e.g. with {{runId}} or a folder of its "
                   "own)", stalled=False)


def _refused_secret(view: IntegrationView) -> Blocker | None:
    if view.secret_refusal is None:
        return None
    return Blocker(reasons.SECRET_REFUSED, view.secret_refusal, stalled=False)


def _insights_export_missing(spec: IntegrationSpec, walkme: ConnectionView | None) -> str | None:
    """An Insights dataset read through a WalkMe Connection that names no insightsExportUrl: why it cannot run."""
    source = spec.source.walkme
    provider = walkme.spec.walkme if walkme is not None and walkme.spec else None
    if source is None or source.dataset not in INSIGHTS_DATASETS or provider is None or provider.insights_export_url:
        return None
    assert walkme is not None
    return f"spec.walkmeConnectionRef: Connection {walkme.name!r}: " + \
        INSIGHTS_EXPORT_NEEDED.format(dataset=source.dataset)


def _type_mismatch(spec: IntegrationSpec, external: ConnectionView, walkme: ConnectionView | None) -> str | None:
    if walkme is not None and walkme.spec and walkme.spec.provider != "walkme":
        return (f"spec.walkmeConnectionRef: Connection {walkme.name!r} is a {walkme.spec.provider} connection; "
                "it must be a walkme connection")
    if not external.spec:
        return None
    provider = external.spec.provider
    side = spec.source if spec.direction == "Inbound" else spec.destination
    allowed = FILE_PROVIDERS if side.kind == "file" else (side.kind,)
    if provider not in allowed:
        wanted = " or ".join(allowed)
        return (f"spec.connectionRef: Connection {external.name!r} is a {provider} connection, but this "
                f"integration's {side.kind} side needs {wanted}")
    return None


def _observe_runs(
    status: IntegrationStatus,
    view: IntegrationView,
    spec: IntegrationSpec,
    jobs: list[JobSummary],
    pods: dict[str, list[PodSummary]],
    now: datetime,
    decision: Decision,
) -> None:
    runs = status.runs
    known = {r.name for r in runs}
    for job in sorted(jobs, key=lambda j: j.start_time or ""):
        if job.name not in known and job.state == "Running" and not status.active_run:
            runs.insert(0, RunRecord(name=job.name, trigger="Retry", start_time=job.start_time or rfc3339(now),
                                     result="Running"))
            status.active_run = job.name
    active = status.active_run
    if not active:
        return
    record = next((r for r in runs if r.name == active), None)
    job = next((j for j in jobs if j.name == active), None)
    if job is None:
        started = parse_time(record.start_time if record else None) or now
        if now - started < JOB_APPEAR_GRACE:
            return
        result = SyncResult(result="Failed", reason=reasons.JOB_LOST,
                            message=f"Job {active} disappeared before it reported a result")
    elif job.state == "Running" or awaiting_pod(job, pods.get(job.name, []), now, POD_RESULT_GRACE):
        return  # the Pod's event (or the resync after the grace) brings the run to its end
    else:
        result = read_result(job, pods.get(job.name, []))
    _record_finished(status, record, result, spec, now, decision)
    status.active_run = None
    del runs[spec.run_history_limit:]


def _record_finished(
    status: IntegrationStatus,
    record: RunRecord | None,
    result: SyncResult,
    spec: IntegrationSpec,
    now: datetime,
    decision: Decision,
) -> None:
    message = run_message(result)
    if record is not None:
        _record_counts(record, result, message, now)
        if record.requested_at:
            status.last_handled_requested_at = record.requested_at
    if result.result in ("Succeeded", "Skipped"):
        status.last_success_time = rfc3339(now)
    if result.result == "Succeeded":
        status.watermark = result.watermark or status.watermark
        status.source_fingerprint = result.source_fingerprint or status.source_fingerprint
        if result.exported_files is not None:
            status.exported_files = list(result.exported_files)
        if result.full_send and not result.dry_run:
            status.last_full_send_time = rfc3339(now)
            status.full_send_requested = None
    event_reason = {"Succeeded": reasons.RUN_SUCCEEDED, "Skipped": reasons.RUN_SKIPPED}.get(
        result.result, reasons.RUN_FAILED)
    name = record.name if record else "run"
    decision.events.append(Event("Warning" if result.result == "Failed" else "Normal", event_reason,
                                 f"{name}: {message}"))
    decision.events += inbound_warnings(name, result, "line" if spec.source.file is not None else "record")
    started = parse_time(record.start_time if record else None) or now
    decision.finished = FinishedRun(result=result, seconds=(now - started).total_seconds())
    status.last_result = LastResult(result=result.result, reason=result.reason, message=message, dry_run=spec.dry_run)


# What a run reports only when it knows it (a file's line accounting; change detection's counts), by the attribute
# name SyncResult and RunRecord share.
REPORTED_IF_KNOWN = ("lines_read", "blank_lines", "continuation_lines", "sent", "unchanged", "users_kept", "full_send")


def _record_counts(record: RunRecord, result: SyncResult, message: str, now: datetime) -> None:
    """The finished run's outcome in its record; a count the run did not report stays as it was."""
    record.completion_time = rfc3339(now)
    record.result = result.result
    record.rows_read, record.rows_written, record.rows_rejected = result.rows_read, result.rows_written, \
        result.rows_rejected
    record.bytes = result.bytes
    record.message = message
    for counted in REPORTED_IF_KNOWN:
        if getattr(result, counted) is not None:
            setattr(record, counted, getattr(result, counted))
    if result.rejected_report:
        record.rejected_report = result.rejected_report
    if result.duplicate_keys:
        record.duplicate_keys = result.duplicate_keys
        record.duplicate_rows = [d.row for d in result.duplicates[:DUPLICATE_ROWS_KEPT]]


def inbound_warnings(name: str, result: SyncResult, unit: str) -> list[Event]:
    """Warnings a finished run deserves although it did not fail: repeated keys, an empty source. ``unit`` is
    what the source's rows are numbered by: a file's "line", a query's or export's "record"."""
    events = []
    if result.duplicate_keys:
        shown = result.duplicates[:DUPLICATE_ROWS_KEPT]
        pairs = ", ".join(f"{unit} {d.row} (replaced by {unit} {d.replaced_by})" for d in shown)
        more = ", …" if result.duplicate_keys > len(shown) else ""
        events.append(Event("Warning", reasons.DUPLICATE_KEYS,
                            f"{name}: {result.duplicate_keys} rows have a key that a later row repeats; the last row "
                            f"of each key was sent, these were left out: {pairs}{more}"))
    if result.rows_rejected and result.result == "Succeeded":
        first = "; ".join(r.reason for r in result.rejected[:3])
        events.append(Event("Warning", reasons.ROWS_REJECTED,
                            f"{name}: {result.rows_rejected} of {result.rows_read} rows were rejected and not written "
                            f"({first}{'; …' if result.rows_rejected > 3 else ''}); the run stayed within "
                            "maxRejectedRows/maxRejectedPercent. Set maxRejectedRows: 0 to fail such runs instead"))
    if result.reason == reasons.EMPTY_SOURCE and result.result == "Succeeded":
        events.append(Event("Warning", reasons.EMPTY_SOURCE, f"{name}: {result.message}; set spec.failOnEmptySource "
                                                             "to fail such runs"))
    return events


def run_message(result: SyncResult) -> str:
    if result.result == "Failed":
        return f"{result.reason}: {without_reason(result.reason, result.message)}" if result.message else result.reason
    if result.result == "Skipped":
        return result.message or "source unchanged since the last run; nothing to do"
    if result.reason == reasons.EMPTY_SOURCE:
        return result.message
    verb = "would write" if result.dry_run else "wrote"
    where = f" to {result.destination}" if result.destination else ""
    first = "; ".join(r.reason for r in result.rejected[:3])
    why = f" ({first}{'; …' if result.rows_rejected > 3 else ''})" if first else ""
    duplicates = f", {result.duplicate_keys} duplicate keys (last row wins)" if result.duplicate_keys else ""
    return (f"read {result.rows_read}, {verb} {result.rows_written}{where}, rejected {result.rows_rejected}{why}"
            f"{duplicates}{change_detection(result)}")


def change_detection(result: SyncResult) -> str:
    """What inbound change detection did, and what the run could not keep (the state, the rejection report), for
    a run's message: ", 12 unchanged (not sent); full send (NoState: …)"."""
    unchanged = f", {result.unchanged} unchanged (not sent)" if result.unchanged else ""
    kept = f", {result.users_kept} sent before and not in this file (kept in WalkMe)" if result.users_kept else ""
    notes = f"; {result.message}" if result.message and not result.dry_run else ""
    return unchanged + kept + notes


def _interval_full_send_due(status: IntegrationStatus, spec: IntegrationSpec, now: datetime) -> bool:
    """Change detection's full send every fullResendInterval is due. The run then reads the file even if it has
    not changed: a run that skips an unchanged file (SourceUnchanged) never reaches the state whose header
    says the full send is due, and WalkMe would go unhealed for as long as the file stays the same."""
    last = parse_time(status.last_full_send_time)
    return spec.direction == "Inbound" and spec.change_detection and last is not None and \
        now - last >= parse_duration(spec.full_resend_interval)


def _start_run_if_due(
    status: IntegrationStatus,
    view: IntegrationView,
    spec: IntegrationSpec,
    external: ConnectionView,
    walkme: ConnectionView | None,
    now: datetime,
    decision: Decision,
    capacity: RunCapacity,
    exports: ConnectionView | None = None,
) -> None:
    requested = view.annotations.get(ANNOTATION_REQUESTED_AT)
    if requested == status.last_handled_requested_at:
        requested = None
    keys: list[RunKey] = []
    if requested:
        keys.append(requested_key(requested))
    resync = view.annotations.get(ANNOTATION_FULL_RESYNC)
    full_resync = bool(resync) and resync != status.last_handled_full_resync
    if full_resync:
        keys.append(requested_key(f"full-resync={resync}"))
    if status.last_run_generation != view.generation:
        keys.append(generation_key(view.generation, created=status.last_run_generation is None))
    slot = None
    if spec.schedule:
        handled = parse_time(status.last_schedule_time) or view.created
        slot = due_slot(spec.schedule, spec.time_zone, now, handled)
        if slot is not None:
            keys.append(schedule_key(slot))
    if not keys:
        return
    key = keys[0]
    full = capacity.full(view.namespace)
    if full is not None:  # nothing is marked handled: the next reconcile (a resync pass) tries again
        status.queued = QueuedRun(trigger=key.trigger, message=full)
        return
    if full_resync:  # this run starts from nothing; if it fails, the next one does too
        status.last_handled_full_resync = resync
        status.watermark = status.source_fingerprint = status.exported_files = None
        status.full_send_requested = True  # change detection: every user, until a run has sent them all
    name = run_name(view.name, view.uid, key)
    assert external.spec is not None and (walkme is None or walkme.spec is not None)
    request = SyncRequest(
        integration=IntegrationIdentity(namespace=view.namespace, name=view.name, uid=view.uid,
                                        generation=view.generation),
        run_id=name,
        slot=rfc3339(slot) if slot else None,
        spec=spec,
        connection=external.spec,
        walkme_connection=walkme.spec if walkme is not None else None,
        export_connection=exports.spec if exports else None,
        state=SyncState(watermark=status.watermark,
                        source_fingerprint=None if _interval_full_send_due(status, spec, now) else
                        status.source_fingerprint,
                        exported_files=list(status.exported_files or []),
                        full_send=bool(status.full_send_requested)),
        force=key.trigger != "Schedule",
    )
    decision.job = (request, key)
    status.active_run = name
    status.last_run_generation = view.generation
    if slot is not None:
        status.last_schedule_time = rfc3339(slot)
    runs = status.runs
    if not runs or runs[0].name != name:
        # requestedAt: lastHandledRequestedAt follows when this run has finished (see _record_finished)
        runs.insert(0, RunRecord(name=name, trigger=key.trigger, start_time=rfc3339(now), result="Running",
                                 requested_at=requested or None))
    del runs[spec.run_history_limit:]
    decision.events.append(Event("Normal", reasons.RUN_STARTED, f"{name}: started ({key.trigger})"))


def _set_conditions(
    status: IntegrationStatus,
    view: IntegrationView,
    spec: IntegrationSpec | None,
    blocker: Blocker | None,
    now: datetime,
) -> None:
    conditions = list(status.conditions)
    gen = view.generation
    last = status.last_result
    active = status.active_run

    def put(type_: str, value: ConditionStatus, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, value, reason, message, generation=gen, now=now)

    if last is None:
        put(reasons.SYNCED, "Unknown", reasons.NEVER_RUN, "no run has finished yet")
    else:
        ok = last.result != "Failed"
        put(reasons.SYNCED, "True" if ok else "False", last.reason, last.message)
    stalled = blocker is not None and blocker.stalled
    put(reasons.STALLED, "True" if stalled else "False",
        blocker.reason if stalled and blocker else reasons.IDLE, blocker.message if stalled and blocker else "")
    if blocker is not None:
        put(reasons.READY, "Unknown" if blocker.pending else "False", blocker.reason, blocker.message)
        put(reasons.RECONCILING, "False" if stalled else "True", blocker.reason,
            "" if stalled else blocker.message)
    elif active:
        # Ready keeps describing the last finished run while the next one goes (README: "Run now, and wait…")
        record = next((r for r in status.runs if r.name == active), None)
        asked = f" (requested-at {record.requested_at})" if record and record.requested_at else ""
        put(reasons.RECONCILING, "True", reasons.RUN_IN_PROGRESS, f"run {active}{asked} is in progress")
        if last is None or last.result == "Failed":
            put(reasons.READY, "Unknown", reasons.RUN_IN_PROGRESS, f"run {active}{asked} is in progress")
    elif status.queued:
        put(reasons.RECONCILING, "True", reasons.RUN_QUEUED, status.queued.message)
        if last is None:
            put(reasons.READY, "Unknown", reasons.RUN_QUEUED, status.queued.message)
    else:
        put(reasons.RECONCILING, "False", reasons.IDLE, "")
        if last is not None and last.result == "Failed":
            put(reasons.READY, "False", reasons.RUN_FAILED, last.message)
        elif spec is not None and spec.suspend:
            put(reasons.READY, "True", reasons.SUSPENDED, "suspended: no new runs start")
        else:
            put(reasons.READY, "True", reasons.RUN_SUCCEEDED if last else reasons.WAITING_FOR_SCHEDULE,
                _ready_message(status, last))
    status.conditions = conditions


def _ready_message(status: IntegrationStatus, last: LastResult | None) -> str:
    parts = [f"last run: {last.message}"] if last else ["no run yet"]
    if status.next_schedule_time:
        parts.append(f"next run at {status.next_schedule_time}")
    return "; ".join(parts)
