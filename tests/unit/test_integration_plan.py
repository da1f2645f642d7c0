"""The Integration planner: which run starts, what status and Events follow (no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import IntegrationSpec, IntegrationStatus
from walkme_dic.api.run import DuplicateRow, RejectedRow, SyncResult
from walkme_dic.conditions import find_condition
from walkme_dic.jobs.results import JobSummary, PodSummary
from walkme_dic.planning.integration import (
    ConnectionView,
    Decision,
    DestinationClaim,
    IntegrationView,
    RunCapacity,
    plan,
)
from walkme_dic.planning.report_history import IDENTITY_HISTORY_LIMIT

NOW = datetime(2026, 11, 25, 10, 7, tzinfo=UTC)
CREATED = NOW - timedelta(hours=1)

S3 = ConnectionSpec.model_validate({"s3": {"bucket": "acme-data", "region": "eu-west-1"}})
SALESFORCE = ConnectionSpec.model_validate(
    {"salesforce": {"instanceUrl": "https://acme.my.salesforce.com", "auth": {"secretRef": {"name": "sf"}}}}
)
WALKME = ConnectionSpec.model_validate({"walkme": {"auth": {"secretRef": {"name": "wm"}},
                                                   "insightsExportUrl": "https://insights.example.com"}})
REQUESTED_AT = "integrations.walkme.io/requested-at"


def inbound_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "direction": "Inbound",
        "connectionRef": {"name": "s3"},
        "walkmeConnectionRef": {"name": "walkme"},
        "source": {"file": {"path": "users.csv"}},
        "destination": {"walkme": {"integrationTokenSecretRef": {"name": "tok", "key": "token"},
                                   "userIdProperty": "uuid"}},
        "mapping": {"key": {"source": "id", "destination": "uuid"}, "activeField": "active"},
    }
    spec.update(overrides)
    return spec


def view(spec: dict[str, Any] | None = None, status: IntegrationStatus | dict[str, Any] | None = None,
         generation: int = 1, annotations: dict[str, str] | None = None) -> IntegrationView:
    """``status`` as a plan left it, or as the API server holds it (parsed here, as the controller does)."""
    typed = status if isinstance(status, IntegrationStatus) else IntegrationStatus.model_validate(status or {})
    return IntegrationView(namespace="team-a", name="users-import", uid="uid-1", generation=generation,
                           created=CREATED, annotations=annotations or {}, spec=spec or inbound_spec(),
                           status=typed)


def wire(status: IntegrationStatus) -> dict[str, Any]:
    """The status as the controller writes it (the JSON the API server stores)."""
    return status.to_wire()


def ready(name: str, spec: ConnectionSpec) -> ConnectionView:
    return ConnectionView(name=name, exists=True, ready=True, spec=spec)


def condition(status: IntegrationStatus, type_: str) -> dict[str, Any]:
    found = find_condition(status.conditions, type_)
    assert found is not None, f"no {type_} condition in {status.conditions}"
    return found.to_wire()


def run_plan(v: IntegrationView, jobs: list[JobSummary] | None = None,
             pods: dict[str, list[PodSummary]] | None = None, now: datetime = NOW,
             external: ConnectionView | None = None):
    return plan(v, external or ready("s3", S3), ready("walkme", WALKME), jobs or [], pods or {}, now)


def test_new_integration_starts_one_run_for_its_generation() -> None:
    decision = run_plan(view())
    assert decision.job is not None
    request, key = decision.job
    assert key.trigger == "Created"
    assert request.run_id == wire(decision.status)["activeRun"]
    assert request.force is True
    assert wire(decision.status)["runs"][0] == {  # the counts as the CRD's defaults fill them in
        "name": request.run_id, "trigger": "Created", "startTime": "2026-11-25T10:07:00Z", "result": "Running",
        "rowsRead": 0, "rowsWritten": 0, "rowsRejected": 0, "bytes": 0, "message": ""}
    assert condition(decision.status, "Reconciling")["status"] == "True"
    assert condition(decision.status, "Ready")["status"] == "Unknown"
    assert [e.reason for e in decision.events] == ["RunStarted"]


def test_connection_not_ready_starts_no_job() -> None:
    external = ConnectionView(name="s3", exists=True, ready=False, message="Secret 's3' not found", spec=S3)
    decision = run_plan(view(), external=external)
    assert decision.job is None
    ready_condition = condition(decision.status, "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "ConnectionNotReady")
    assert "Secret 's3' not found" in ready_condition["message"]


def test_missing_connection_is_named() -> None:
    decision = run_plan(view(), external=ConnectionView(name="s3", exists=False))
    assert decision.job is None
    assert "spec.connectionRef: Connection 's3' does not exist" in condition(decision.status, "Ready")["message"]


def test_connection_of_wrong_type_stalls() -> None:
    decision = run_plan(view(), external=ready("s3", SALESFORCE))
    assert decision.job is None
    assert condition(decision.status, "Stalled")["reason"] == "ConnectionTypeMismatch"


GCS = ConnectionSpec.model_validate({"gcs": {"bucket": "acme-data"}})
WEBHOOK = ConnectionSpec.model_validate({"webhook": {"url": "https://hooks.acme.example/dic",
                                                     "auth": {"secretRef": {"name": "hook"}}}})
TO_WEBHOOK = inbound_spec(direction="Outbound", source={"walkme": {"dataset": "events"}},
                          destination={"webhook": {"batchSize": 100}},
                          mapping={"key": {"source": "eventId", "destination": "event_id"}})


@pytest.mark.parametrize("dataset", ["users", "events", "sessions", "report", "activityLog"])
def test_an_insights_dataset_waits_for_an_insights_export_url_walkme_publishes_none(dataset: str) -> None:
    """Issue 24: the Insights export API is ours, not WalkMe's; it is off unless a Connection names one."""
    source = {"dataset": dataset, **({"reportId": "r-1"} if dataset == "report" else {})}
    spec = {**TO_WEBHOOK, "source": {"walkme": source}}
    plain = ConnectionSpec.model_validate({"walkme": {"auth": {"secretRef": {"name": "wm"}}}})
    decision = plan(view(spec=spec), ready("x", WEBHOOK), ready("walkme", plain), [], {}, NOW)
    if dataset == "activityLog":  # WalkMe's documented activity log needs no such URL
        assert decision.job is not None
        return
    assert decision.job is None
    ready_condition = condition(decision.status, "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "InsightsExportNotConfigured")
    assert f"dataset {dataset} reads an Insights export endpoint WalkMe does not publish" in ready_condition["message"]
    assert "spec.walkme.insightsExportUrl" in ready_condition["message"]
    assert condition(decision.status, "Stalled")["status"] == "True"
    configured = plan(view(spec=spec), ready("x", WEBHOOK), ready("walkme", WALKME), [], {}, NOW)
    assert configured.job is not None


def test_each_side_takes_only_connections_of_its_kind() -> None:
    cases = [(inbound_spec(), GCS, None), (inbound_spec(), WEBHOOK, "needs s3 or azureBlob or gcs"),
             (TO_WEBHOOK, WEBHOOK, None), (TO_WEBHOOK, GCS, "webhook side needs webhook"),
             (TO_WEBHOOK, S3, "webhook side needs webhook")]
    for spec, external, says in cases:
        decision = run_plan(view(spec=spec), external=ready("x", external))
        if says is None:
            assert decision.job is not None, (spec, external)
        else:
            assert decision.job is None
            stalled = condition(decision.status, "Stalled")
            assert stalled["reason"] == "ConnectionTypeMismatch" and says in stalled["message"], stalled


def test_changed_connection_ref_is_refused_and_stalls() -> None:
    first = run_plan(view()).status
    changed = view(spec=inbound_spec(connectionRef={"name": "other-bucket"}), status=first, generation=2)
    decision = run_plan(changed, external=ready("other-bucket", S3))
    assert decision.job is None
    stalled = condition(decision.status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "ConnectionRefImmutable")
    assert "cannot change" in stalled["message"] and "'s3'" in stalled["message"]
    assert [e.reason for e in decision.events] == ["ConnectionRefImmutable"]
    again = run_plan(view(spec=inbound_spec(connectionRef={"name": "other-bucket"}), status=decision.status,
                          generation=2), external=ready("other-bucket", S3))
    assert again.events == [] and not again.status_changed


def finished_job(name: str, state: str = "Succeeded") -> JobSummary:
    return JobSummary(name=name, uid="job-uid", owner_uid="uid-1", state=state,  # type: ignore[arg-type]
                      start_time="2026-11-25T10:07:00Z", completion_time="2026-11-25T10:08:00Z",
                      condition_reason="BackoffLimitExceeded" if state == "Failed" else "",
                      condition_message="Job has reached the specified backoff limit" if state == "Failed" else "")


def test_system_and_environment_warn_once_per_generation_that_they_do_nothing() -> None:
    walkme = {"integrationTokenSecretRef": {"name": "tok", "key": "token"}, "userIdProperty": "uuid",
              "system": "sys-1", "environment": "Production"}
    spec = inbound_spec(destination={"walkme": walkme})
    first = run_plan(view(spec=spec))
    warnings = [e for e in first.events if e.reason == "DeprecatedField"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert "spec.destination.walkme.system and spec.destination.walkme.environment do nothing" in \
        warnings[0].message and "integration token" in warnings[0].message
    again = run_plan(view(spec=spec, status=first.status))
    assert not [e for e in again.events if e.reason == "DeprecatedField"], "once per generation, not per reconcile"
    changed = run_plan(view(spec=spec, status=first.status, generation=2))
    assert [e.reason for e in changed.events].count("DeprecatedField") == 1
    assert not [e for e in run_plan(view()).events if e.reason == "DeprecatedField"], "none without the fields"


def pod_with(job: str, result: SyncResult | None, exit_code: int = 0) -> PodSummary:
    return PodSummary(name=f"{job}-abcde", job_name=job, creation="2026-11-25T10:07:01Z", exit_code=exit_code,
                      message=result.to_termination_message() if result else "")


def test_success_records_counts_sets_synced_and_emits_event() -> None:
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    result = SyncResult(result="Succeeded", reason="Synced", rows_read=3, rows_written=3, rows_rejected=0,
                        source_fingerprint="etag-1", destination="WalkMe user attributes")
    decision = run_plan(view(status=started.status), jobs=[finished_job(name)],
                        pods={name: [pod_with(name, result)]}, now=NOW + timedelta(minutes=1))
    assert decision.job is None
    assert "activeRun" not in wire(decision.status)
    run = wire(decision.status)["runs"][0]
    assert (run["result"], run["rowsRead"], run["rowsWritten"]) == ("Succeeded", 3, 3)
    assert wire(decision.status)["sourceFingerprint"] == "etag-1"
    assert condition(decision.status, "Synced")["status"] == "True"
    assert condition(decision.status, "Ready")["status"] == "True"
    assert [e.reason for e in decision.events] == ["RunSucceeded"]
    assert decision.finished is not None and decision.finished.seconds == 60


def finish(status: IntegrationStatus, result: SyncResult, annotations: dict[str, str] | None = None,
           now: datetime = NOW) -> Any:
    name = status.active_run
    state = "Failed" if result.result == "Failed" else "Succeeded"
    return run_plan(view(status=status, annotations=annotations), jobs=[finished_job(name, state)],
                    pods={name: [pod_with(name, result, exit_code=1 if state == "Failed" else 0)]}, now=now)


def finish_first_run(result: SyncResult) -> Decision:
    return finish(run_plan(view()).status, result, now=NOW + timedelta(minutes=1))


def test_duplicate_keys_are_counted_in_status_and_named_in_a_warning() -> None:
    duplicates = [DuplicateRow(row=row, replaced_by=950) for row in (1, 2, 3, 4, 5, 6, 7)]
    result = SyncResult(result="Succeeded", reason="Synced", rows_read=1000, rows_written=993, duplicate_keys=7,
                        duplicates=duplicates)
    decision = finish_first_run(result)
    run = wire(decision.status)["runs"][0]
    assert (run["duplicateKeys"], run["duplicateRows"]) == (7, [1, 2, 3, 4, 5])
    assert "7 duplicate keys" in run["message"]
    warning = next(e for e in decision.events if e.reason == "DuplicateKeys")
    assert warning.type == "Warning" and "line 1 (replaced by line 950)" in warning.message
    assert condition(decision.status, "Synced")["status"] == "True"


def test_a_query_names_its_duplicates_by_record_number() -> None:
    spec = inbound_spec(connectionRef={"name": "sf"}, source={"salesforce": {"soql": "SELECT Id FROM Contact"}})
    status = run_plan(view(spec), external=ready("sf", SALESFORCE)).status
    name = status.active_run
    result = SyncResult(result="Succeeded", reason="Synced", rows_read=3, rows_written=2, duplicate_keys=1,
                        duplicates=[DuplicateRow(row=1, replaced_by=3)])
    decision = run_plan(view(spec, status=status), jobs=[finished_job(name, "Succeeded")],
                        pods={name: [pod_with(name, result, exit_code=0)]}, now=NOW + timedelta(minutes=1),
                        external=ready("sf", SALESFORCE))
    warning = next(e for e in decision.events if e.reason == "DuplicateKeys")
    assert "record 1 (replaced by record 3)" in warning.message and "line" not in warning.message


def test_a_file_run_shows_where_every_line_went_in_status() -> None:
    result = SyncResult(result="Succeeded", reason="Synced", rows_read=6, rows_written=5, rows_rejected=1,
                        lines_read=12, blank_lines=3, continuation_lines=2)
    run = wire(finish_first_run(result).status)["runs"][0]
    assert (run["linesRead"], run["blankLines"], run["continuationLines"], run["rowsRead"]) == (12, 3, 2, 6)


def test_a_query_run_has_no_line_counts_in_status() -> None:
    run = wire(finish_first_run(SyncResult(result="Succeeded", reason="Synced", rows_read=3, rows_written=3))
               .status)["runs"][0]
    assert not {"linesRead", "blankLines", "continuationLines"} & set(run)


def test_a_run_without_duplicates_has_no_duplicate_fields_or_warning() -> None:
    decision = finish_first_run(SyncResult(result="Succeeded", reason="Synced", rows_read=3, rows_written=3))
    assert "duplicateKeys" not in wire(decision.status)["runs"][0]
    assert [e.type for e in decision.events] == ["Normal"]


def test_a_due_run_waits_while_a_cap_is_reached_and_starts_once_a_slot_is_free() -> None:
    full = RunCapacity(namespace_running=3, total_running=3, per_namespace=3)
    decision = plan(view(), ready("s3", S3), ready("walkme", WALKME), [], {}, NOW, capacity=full)
    assert decision.job is None
    reconciling = condition(decision.status, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "RunQueued")
    assert "runs.maxPerNamespace" in reconciling["message"] and wire(decision.status)["queued"]["trigger"]
    assert condition(decision.status, "Ready")["status"] == "Unknown"
    again = plan(view(status=decision.status), ready("s3", S3), ready("walkme", WALKME), [], {}, NOW,
                 capacity=RunCapacity(namespace_running=2, total_running=2, per_namespace=3))
    assert again.job is not None and "queued" not in wire(again.status)
    cluster_full = RunCapacity(namespace_running=0, total_running=10, total=10)
    assert "runs.max)" in (cluster_full.full("team-a") or "")


def test_a_run_that_left_rows_out_within_its_limits_warns_with_the_first_reasons() -> None:
    rejected = [RejectedRow(row=row, reason=f"record {row}: spec.mapping.key: the key is empty") for row in (2, 5)]
    decision = finish_first_run(SyncResult(result="Succeeded", reason="RowsRejected", rows_read=6, rows_written=4,
                                           rows_rejected=2, rejected=rejected))
    warning = next(e for e in decision.events if e.reason == "RowsRejected")
    assert warning.type == "Warning" and "2 of 6 rows were rejected" in warning.message
    assert "record 2" in warning.message and "maxRejectedRows: 0" in warning.message
    assert condition(decision.status, "Synced")["reason"] == "RowsRejected"


def test_empty_source_succeeds_with_its_reason_and_a_warning() -> None:
    decision = finish_first_run(SyncResult(result="Succeeded", reason="EmptySource",
                                           message="users.csv has no data rows"))
    synced = condition(decision.status, "Synced")
    assert (synced["status"], synced["reason"]) == ("True", "EmptySource")
    warning = next(e for e in decision.events if e.reason == "EmptySource")
    assert warning.type == "Warning" and "failOnEmptySource" in warning.message


def test_empty_source_can_fail_the_run() -> None:
    decision = finish_first_run(SyncResult(result="Failed", reason="EmptySource", message="users.csv has no data rows"))
    assert (condition(decision.status, "Synced")["status"], condition(decision.status, "Ready")["status"]) == \
        ("False", "False")
    assert [e.reason for e in decision.events] == ["RunFailed"]


def test_partially_applied_run_fails_saying_how_many_rows_were_applied() -> None:
    result = SyncResult(result="Failed", reason="PartiallyApplied", rows_read=250, rows_written=99, rows_rejected=151,
                        message="151 rows rejected, more than maxRejectedRows 0; 99 rows were applied to WalkMe")
    decision = finish_first_run(result)
    synced = condition(decision.status, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "PartiallyApplied")
    assert "99 rows were applied" in synced["message"]


def test_failure_sets_synced_false_with_the_message() -> None:
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    result = SyncResult(result="Failed", reason="AuthenticationFailed",
                        message="S3 rejected the access key for bucket 'acme-data'")
    decision = run_plan(view(status=started.status), jobs=[finished_job(name, "Failed")],
                        pods={name: [pod_with(name, result, exit_code=1)]})
    synced = condition(decision.status, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthenticationFailed")
    assert "rejected the access key" in synced["message"]
    assert condition(decision.status, "Ready")["reason"] == "RunFailed"
    assert decision.events[0].type == "Warning"


@pytest.mark.parametrize("message", ["bucket 'acme-data' does not exist",
                                     "NotFound: bucket 'acme-data' does not exist"])
def test_failure_messages_name_the_reason_once(message: str) -> None:
    started = run_plan(view())
    done = finish(started.status, SyncResult(result="Failed", reason="NotFound", message=message))
    synced, ready = condition(done.status, "Synced"), condition(done.status, "Ready")
    assert (synced["reason"], synced["message"]) == ("NotFound", "bucket 'acme-data' does not exist")
    assert (ready["reason"], ready["message"]) == ("RunFailed", "NotFound: bucket 'acme-data' does not exist")
    assert wire(done.status)["runs"][0]["message"] == "NotFound: bucket 'acme-data' does not exist"
    assert done.events[0].message.endswith(": NotFound: bucket 'acme-data' does not exist")


def test_failed_job_without_result_says_why() -> None:
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    decision = run_plan(view(status=started.status), jobs=[finished_job(name, "Failed")],
                        pods={name: [pod_with(name, None, exit_code=137)]})
    assert "backoff limit" in condition(decision.status, "Synced")["message"]


def test_finished_job_waits_for_its_pod_before_reading_the_result() -> None:
    """Jobs and Pods come on separate watches: a Job's completion may arrive before its Pod's message."""
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    job = finished_job(name)
    early = run_plan(view(status=started.status), jobs=[job], now=NOW + timedelta(minutes=1, seconds=5))
    assert wire(early.status)["activeRun"] == name and early.events == [] and early.finished is None
    late = run_plan(view(status=started.status), jobs=[job], now=NOW + timedelta(minutes=3))
    assert condition(late.status, "Synced")["reason"] == "NoResult"


def test_running_job_keeps_run_active_and_starts_nothing_new() -> None:
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    running = finished_job(name, "Running")
    decision = run_plan(view(status=started.status, generation=2), jobs=[running])
    assert decision.job is None and wire(decision.status)["activeRun"] == name


def test_restarted_operator_adopts_a_running_job_it_has_no_record_of() -> None:
    orphan = finished_job("users-import-x-g1", "Running")
    decision = run_plan(view(), jobs=[orphan])
    assert decision.job is None
    assert wire(decision.status)["activeRun"] == "users-import-x-g1"


def test_job_that_never_appears_is_reported_lost_after_grace() -> None:
    started = run_plan(view())
    decision = run_plan(view(status=started.status), now=NOW + timedelta(minutes=5))
    assert condition(decision.status, "Synced")["reason"] == "JobLost"


def test_same_inputs_twice_write_nothing() -> None:
    started = run_plan(view())
    name = wire(started.status)["activeRun"]
    done = run_plan(view(status=started.status), jobs=[finished_job(name)],
                    pods={name: [pod_with(name, SyncResult(result="Succeeded", reason="Synced"))]})
    again = run_plan(view(status=done.status), jobs=[finished_job(name)],
                     pods={name: [pod_with(name, SyncResult(result="Succeeded", reason="Synced"))]})
    assert not again.status_changed and again.job is None and again.events == []


def settle(v: IntegrationView, now: datetime) -> dict[str, Any]:
    """The status, as stored, after the view's first run succeeded."""
    started = run_plan(v, now=now)
    name = wire(started.status)["activeRun"]
    done = run_plan(view(spec=v.spec, status=started.status, generation=v.generation, annotations=v.annotations),
                    jobs=[finished_job(name)],
                    pods={name: [pod_with(name, SyncResult(result="Succeeded", reason="Synced"))]}, now=now)
    return wire(done.status)


def test_schedule_slot_starts_one_run_per_slot() -> None:
    spec = inbound_spec(schedule="0 */6 * * *")
    status = settle(view(spec=spec), NOW)
    assert status["nextScheduleTime"] == "2026-11-25T12:00:00Z"
    assert run_plan(view(spec=spec, status=status), now=NOW + timedelta(minutes=30)).job is None
    at_noon = run_plan(view(spec=spec, status=status), now=datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC))
    assert at_noon.job is not None
    request, key = at_noon.job
    assert key.trigger == "Schedule" and request.slot == "2026-11-25T12:00:00Z" and request.force is False
    assert wire(at_noon.status)["lastScheduleTime"] == "2026-11-25T12:00:00Z"


def test_missed_slots_collapse_into_one_run() -> None:
    spec = inbound_spec(schedule="0 * * * *")
    status = settle(view(spec=spec), NOW)
    late = run_plan(view(spec=spec, status=status), now=NOW + timedelta(hours=5))
    assert late.job is not None and late.job[0].slot == "2026-11-25T15:00:00Z"


def test_schedule_in_time_zone() -> None:
    spec = inbound_spec(schedule="0 9 * * *", timeZone="Europe/Berlin")
    status = settle(view(spec=spec), NOW)
    assert status["nextScheduleTime"] == "2026-11-26T08:00:00Z"


def test_suspended_integration_starts_nothing() -> None:
    spec = inbound_spec(schedule="0 * * * *", suspend=True)
    decision = run_plan(view(spec=spec))
    assert decision.job is None
    assert condition(decision.status, "Ready")["reason"] == "Suspended"
    assert "nextScheduleTime" not in wire(decision.status)


def test_requested_at_starts_a_forced_run_once() -> None:
    status = settle(view(), NOW)
    asked = view(status=status, annotations={REQUESTED_AT: "2026-11-25T10:30"})
    decision = run_plan(asked)
    assert decision.job is not None and decision.job[1].trigger == "Requested" and decision.job[0].force
    assert wire(decision.status)["runs"][0]["requestedAt"] == "2026-11-25T10:30"
    assert settle(asked, NOW)["lastHandledRequestedAt"] == "2026-11-25T10:30"
    handled = view(status=settle(asked, NOW), annotations=asked.annotations)
    assert run_plan(handled).job is None


def test_full_resync_annotation_starts_one_run_without_watermark_or_fingerprint() -> None:
    status = {**settle(view(), NOW), "watermark": "2026-11-24T06:00:00.000Z", "sourceFingerprint": "etag-1"}
    assert run_plan(view(status=status)).job is None
    asked = view(status=status, annotations={"integrations.walkme.io/full-resync": "1"})
    decision = run_plan(asked)
    assert decision.job is not None
    request, key = decision.job
    assert key.trigger == "Requested" and request.force
    assert request.state.watermark is None and request.state.source_fingerprint is None
    assert wire(decision.status)["lastHandledFullResync"] == "1"
    assert "watermark" not in wire(decision.status) and "sourceFingerprint" not in wire(decision.status), \
        "a failed full run must not fall back to the old watermark"
    handled = view(status=settle(asked, NOW), annotations=asked.annotations)
    assert run_plan(handled).job is None
    again = run_plan(view(status=handled.status, annotations={"integrations.walkme.io/full-resync": "2"}))
    assert again.job is not None and again.job[0].state.watermark is None


def test_watermark_is_carried_into_the_next_run() -> None:
    status = {**settle(view(), NOW), "watermark": "2026-11-24T06:00:00.000Z"}
    decision = run_plan(view(status=status, annotations={"integrations.walkme.io/requested-at": "x"}))
    assert decision.job is not None and decision.job[0].state.watermark == "2026-11-24T06:00:00.000Z"


@pytest.mark.parametrize("result", [
    SyncResult(result="Succeeded", reason="Synced", rows_read=2, rows_written=2),
    SyncResult(result="Skipped", reason="SourceUnchanged"),
    SyncResult(result="Failed", reason="NotFound", message="bucket 'acme-data' does not exist"),
])
def test_requested_run_is_marked_handled_only_with_its_result(result: SyncResult) -> None:
    """`kubectl wait --for=jsonpath={.status.lastHandledRequestedAt}=V` returns when V's run has a result."""
    asked = {REQUESTED_AT: "v1"}
    started = run_plan(view(status=settle(view(), NOW), annotations=asked))
    assert wire(started.status).get("lastHandledRequestedAt") is None
    reconciling = condition(started.status, "Reconciling")
    assert reconciling["status"] == "True" and "requested-at v1" in reconciling["message"]
    running = run_plan(view(status=started.status, annotations=asked),
                       jobs=[finished_job(wire(started.status)["activeRun"], "Running")])
    assert wire(running.status).get("lastHandledRequestedAt") is None and running.job is None
    done = finish(started.status, result, asked)
    assert wire(done.status)["lastHandledRequestedAt"] == "v1"
    assert wire(done.status)["runs"][0]["result"] == result.result
    assert wire(done.status)["lastResult"]["result"] == result.result, "the result is in the same status write"
    assert run_plan(view(status=done.status, annotations=asked)).job is None, "one run per value"


def test_ready_keeps_the_last_result_while_a_requested_run_goes() -> None:
    settled = settle(view(), NOW)
    started = run_plan(view(status=settled, annotations={REQUESTED_AT: "v1"}))
    before, during = condition(view(status=settled).status, "Ready"), condition(started.status, "Ready")
    assert (during["status"], during["reason"]) == ("True", "RunSucceeded")
    assert during["lastTransitionTime"] == before["lastTransitionTime"]


def test_request_made_during_another_run_gets_its_own_run_after_it() -> None:
    started = run_plan(view())  # the creation run
    asked = {REQUESTED_AT: "v2"}
    running = run_plan(view(status=started.status, annotations=asked),
                       jobs=[finished_job(wire(started.status)["activeRun"], "Running")])
    assert running.job is None
    first_done = finish(started.status, SyncResult(result="Succeeded", reason="Synced"), asked)
    assert wire(first_done.status).get("lastHandledRequestedAt") is None, "the creation run did not handle v2"
    assert first_done.job is not None and first_done.job[1].trigger == "Requested"
    assert wire(finish(first_done.status, SyncResult(result="Succeeded", reason="Synced"),
                       asked).status)["lastHandledRequestedAt"] == "v2"


def test_request_waits_while_the_integration_is_blocked() -> None:
    asked = {REQUESTED_AT: "v1"}
    blocked = run_plan(view(status=settle(view(), NOW), annotations=asked),
                       external=ConnectionView(name="s3", exists=False))
    assert blocked.job is None and wire(blocked.status).get("lastHandledRequestedAt") is None
    unblocked = run_plan(view(status=blocked.status, annotations=asked))
    assert unblocked.job is not None and unblocked.job[1].trigger == "Requested"


@pytest.mark.parametrize(("spec", "external", "reason"), [
    (inbound_spec(schedule="every day"), None, "InvalidSpec"),
    (inbound_spec(), ConnectionView(name="s3", exists=False), "ConnectionNotFound"),
    (inbound_spec(), ConnectionView(name="s3", exists=True, ready=False, message="probing", spec=S3),
     "ConnectionNotReady"),
    (inbound_spec(), ready("s3", SALESFORCE), "ConnectionTypeMismatch"),
])
def test_every_blocker_emits_one_warning_per_transition(
    spec: dict[str, Any], external: ConnectionView | None, reason: str,
) -> None:
    first = run_plan(view(spec=spec), external=external)
    assert [(e.type, e.reason) for e in first.events] == [("Warning", reason)]
    assert first.events[0].message == condition(first.status, "Ready")["message"]
    again = run_plan(view(spec=spec, status=first.status), external=external, now=NOW + timedelta(minutes=1))
    assert again.events == [], "no Event while the reason stays"


def test_a_connection_in_its_first_probe_is_waited_for_without_a_warning() -> None:
    probing = ConnectionView(name="s3", exists=True, ready=False, spec=S3, probing=True,
                             message="probing bucket 'acme-data' at s3.eu-west-1.amazonaws.com")
    waiting = run_plan(view(), external=probing)
    ready_condition = condition(waiting.status, "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("Unknown", "ConnectionNotReady")
    assert condition(waiting.status, "Reconciling")["status"] == "True"
    assert waiting.events == [] and waiting.job is None
    failed = ConnectionView(name="s3", exists=True, ready=False, spec=S3, message="probe of … timed out")
    refused = run_plan(view(status=waiting.status), external=failed)
    assert condition(refused.status, "Ready")["status"] == "False"
    assert [(e.type, e.reason) for e in refused.events] == [("Warning", "ConnectionNotReady")]


def test_a_new_blocker_reason_is_a_new_warning() -> None:
    missing = run_plan(view(), external=ConnectionView(name="s3", exists=False))
    not_ready = run_plan(view(status=missing.status),
                         external=ConnectionView(name="s3", exists=True, ready=False, spec=S3))
    assert [e.reason for e in not_ready.events] == ["ConnectionNotReady"]


def test_spec_change_starts_a_new_run() -> None:
    status = settle(view(), NOW)
    decision = run_plan(view(spec=inbound_spec(dryRun=True), status=status, generation=2))
    assert decision.job is not None and decision.job[1].trigger == "SpecChanged"


def test_run_history_is_bounded() -> None:
    spec = inbound_spec(runHistoryLimit=2)
    status: dict[str, Any] = {}
    for generation in range(1, 5):
        status = settle(view(spec=spec, status=status, generation=generation), NOW)
    assert len(status["runs"]) == 2
    assert status["runs"][0]["name"].endswith("g4")


def test_invalid_spec_stalls_with_the_field() -> None:
    decision = run_plan(view(spec=inbound_spec(schedule="every day")))
    stalled = condition(decision.status, "Stalled")
    assert stalled["reason"] == "InvalidSpec" and "schedule" in stalled["message"]
    assert decision.job is None


def test_every_condition_has_all_fields() -> None:
    for cond in wire(run_plan(view()).status)["conditions"]:
        assert set(cond) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}


def test_jobs_of_runs_that_left_the_history_are_deleted() -> None:
    spec = inbound_spec(runHistoryLimit=1)
    status = settle(view(spec=spec), NOW)
    old = status["runs"][0]["name"]
    newer = run_plan(view(spec=spec, status=status, generation=2), jobs=[finished_job(old)])
    assert newer.delete_jobs == [old]
    assert run_plan(view(spec=spec, status=status), jobs=[finished_job(old)]).delete_jobs == []


# -- report history: what a spec change replaced stays in status -----------------------------------


def outbound_spec(source: dict[str, Any], destination: dict[str, Any] | None = None) -> dict[str, Any]:
    return inbound_spec(direction="Outbound", source={"walkme": source},
                        destination=destination or {"file": {"path": "exports/users-{date}.csv"}},
                        mapping={"key": {"source": "id", "destination": "id"}})


def test_first_reconcile_records_identities_without_history_or_event() -> None:
    decision = run_plan(view(spec=outbound_spec({"dataset": "report", "reportId": "r-1"})))
    assert wire(decision.status)["sourceIdentity"]["identity"] == "walkme report 'r-1'"
    assert wire(decision.status)["destinationIdentity"]["identity"] == "file 'exports/users-{date}.csv'"
    assert "identityHistory" not in wire(decision.status)
    assert [e.reason for e in decision.events] == ["RunStarted"]


@pytest.mark.parametrize(("side", "before", "after", "old_identity"), [
    ("source", {"dataset": "report", "reportId": "r-1"}, {"dataset": "report", "reportId": "r-2"},
     "walkme report 'r-1'"),
    ("source", {"dataset": "report", "reportId": "r-1"}, {"dataset": "users"}, "walkme report 'r-1'"),
    ("source", {"dataset": "users"}, {"dataset": "events"}, "walkme dataset 'users'"),
])
def test_replaced_walkme_source_is_kept_with_a_patch_that_restores_it(
    side: str, before: dict[str, Any], after: dict[str, Any], old_identity: str,
) -> None:
    status = settle(view(spec=outbound_spec(before)), NOW)
    later = NOW + timedelta(minutes=5)
    changed = outbound_spec(after)
    decision = run_plan(view(spec=changed, status=status, generation=2), now=later)
    (entry,) = wire(decision.status)["identityHistory"]
    assert entry["side"] == side and entry["identity"] == old_identity
    assert entry["replacedBy"] == wire(decision.status)["sourceIdentity"]["identity"]
    assert (entry["replacedAt"], entry["generation"]) == ("2026-11-25T10:12:00Z", 2)
    (event,) = [e for e in decision.events if e.reason == "SourceReplaced"]
    assert event.type == "Normal" and old_identity in event.message
    assert f"kubectl patch wmint users-import -n team-a --type merge -p '{entry['restorePatch']}'" in event.message
    assert restored_source(changed, entry) == IntegrationSpec.model_validate(outbound_spec(before)).source


def test_changed_destination_path_template_is_kept() -> None:
    status = settle(view(spec=outbound_spec({"dataset": "users"})), NOW)
    changed = outbound_spec({"dataset": "users"}, {"file": {"path": "exports/v2/users-{date}.csv"}})
    decision = run_plan(view(spec=changed, status=status, generation=2))
    (entry,) = wire(decision.status)["identityHistory"]
    assert (entry["side"], entry["identity"]) == ("destination", "file 'exports/users-{date}.csv'")
    assert [e.reason for e in decision.events if e.reason.endswith("Replaced")] == ["DestinationReplaced"]


@pytest.mark.parametrize("source", [
    {"salesforce": {"soql": "SELECT Id, Email FROM Contact"}},
    {"salesforce": {"object": "Contact", "fields": ["Id", "Email"], "where": "IsActive = true"}},
    {"file": {"path": "hr/users.csv"}},
])
def test_every_inbound_source_kind_has_an_identity_that_restores_it(source: dict[str, Any]) -> None:
    status = run_plan(view(spec=inbound_spec(source=source))).status  # recorded even while a blocker stalls it
    changed = inbound_spec(source={"file": {"path": "hr/other.csv"}})
    decision = run_plan(view(spec=changed, status=status, generation=2))
    (entry,) = wire(decision.status)["identityHistory"]
    assert restored_source(changed, entry) == IntegrationSpec.model_validate(inbound_spec(source=source)).source


def test_settings_that_keep_the_data_the_same_are_not_a_replacement() -> None:
    status = settle(view(spec=inbound_spec()), NOW)
    changed = inbound_spec(source={"file": {"path": "users.csv", "format": "jsonl", "delimiter": ";"}}, dryRun=True)
    decision = run_plan(view(spec=changed, status=status, generation=2))
    assert "identityHistory" not in wire(decision.status)
    assert not [e for e in decision.events if e.reason.endswith("Replaced")]


def test_identity_history_is_bounded_newest_first() -> None:
    status: dict[str, Any] = {}
    for generation in range(1, 14):
        spec = outbound_spec({"dataset": "report", "reportId": f"r-{generation}"})
        status = settle(view(spec=spec, status=status, generation=generation), NOW)
    history = status["identityHistory"]
    assert len(history) == IDENTITY_HISTORY_LIMIT
    assert [h["identity"] for h in history[:2]] == ["walkme report 'r-12'", "walkme report 'r-11'"]


def test_success_and_skip_record_last_success_time_and_failure_does_not() -> None:
    status = settle(view(), NOW)
    assert status["lastSuccessTime"] == "2026-11-25T10:07:00Z"
    started = run_plan(view(spec=inbound_spec(dryRun=True), status=status, generation=2),
                       now=NOW + timedelta(hours=1))
    name = wire(started.status)["activeRun"]
    failed = run_plan(view(spec=inbound_spec(dryRun=True), status=started.status, generation=2),
                      jobs=[finished_job(name, "Failed")],
                      pods={name: [pod_with(name, SyncResult(result="Failed", reason="SourceNotFound"))]},
                      now=NOW + timedelta(hours=1))
    assert wire(failed.status)["lastSuccessTime"] == "2026-11-25T10:07:00Z"


def restored_source(spec: dict[str, Any], entry: dict[str, Any]) -> Any:
    """The source after `kubectl patch --type merge -p <entry's restorePatch>` (merged as the dev cluster's
    API server merges it; it must still validate)."""
    return IntegrationSpec.model_validate(merge_patch({"spec": spec}, json.loads(entry["restorePatch"]))["spec"]).source


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies the operator's restorePatch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def outbound_file_spec(path: str = "exports/users.csv", connection: str = "s3") -> dict[str, Any]:
    return {**inbound_spec(direction="Outbound", source={"walkme": {"dataset": "users"}},
                           destination={"file": {"path": path}}, connectionRef={"name": connection}),
            "mapping": {"key": {"source": "userId", "destination": "user_id"}}}


def claim(name: str, created: datetime, spec: dict[str, Any]) -> DestinationClaim:
    found = DestinationClaim.of(name, created, spec, "team-a")
    assert found is not None
    return found


def test_the_newer_of_two_integrations_writing_one_file_waits_naming_the_older() -> None:
    """Issue 20: two Integrations writing exports/shared.csv silently overwrote each other's runs."""
    older = claim("first-export", CREATED - timedelta(days=1), outbound_file_spec("/exports/users.csv"))
    decision = plan(view(spec=outbound_file_spec()), ready("s3", S3), ready("walkme", WALKME), [], {}, NOW,
                    claims=[older])
    assert decision.job is None
    ready_condition = condition(decision.status, "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "DestinationConflict")
    assert "Integration 'first-export' already writes 'exports/users.csv' through Connection 's3'" in \
        ready_condition["message"]
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "DestinationConflict")]


def test_a_reader_of_the_file_makes_no_claim() -> None:
    assert DestinationClaim.of("reader", CREATED, inbound_spec(source={"file": {"path": "exports/users.csv"}})) is None


def test_an_older_claim_from_another_namespace_blocks_without_naming_it() -> None:
    """The controller finds claims through other Connections onto the same store (test_store_location)."""
    theirs = DestinationClaim.of("payroll-export", CREATED - timedelta(days=1), outbound_file_spec(connection="b"),
                                 "tenant-b")
    assert theirs is not None
    decision = plan(view(spec=outbound_file_spec()), ready("s3", S3), ready("walkme", WALKME), [], {}, NOW,
                    claims=[theirs])
    ready_condition = condition(decision.status, "Ready")
    assert (decision.job, ready_condition["reason"]) == (None, "DestinationConflict")
    assert "another namespace" in ready_condition["message"]
    assert "payroll-export" not in ready_condition["message"] and "tenant-b" not in ready_condition["message"]


def test_the_older_integration_keeps_writing() -> None:
    newer = claim("second-export", CREATED + timedelta(minutes=5), outbound_file_spec())
    decision = plan(view(spec=outbound_file_spec()), ready("s3", S3), ready("walkme", WALKME), [], {}, NOW,
                    claims=[newer, claim("users-import", CREATED, outbound_file_spec())])
    assert decision.job is not None


def test_a_run_names_where_every_rejected_row_is_listed() -> None:
    where = "s3://lake/dic/walkme-dic/rejected/users-import/run-1.csv"
    result = SyncResult(result="Succeeded", reason="RowsRejected", rows_read=6, rows_written=2, rows_rejected=4,
                        rejected_report=where)
    assert wire(finish_first_run(result).status)["runs"][0]["rejectedReport"] == where
    clean = finish_first_run(SyncResult(result="Succeeded", reason="Synced"))
    assert "rejectedReport" not in wire(clean.status)["runs"][0]
