"""Inbound change detection in status (issue 23): the planner puts a run's counts and full-send reason in its
record, status.lastFullSendTime after a full send, and the full-resync annotation asks for one until a run
has made it (no server)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.test_integration_plan import (
    NOW,
    finish,
    finish_first_run,
    finished_job,
    inbound_spec,
    pod_with,
    run_plan,
    view,
    wire,
)
from walkme_dic.api.integration import IntegrationSpec
from walkme_dic.api.run import SyncResult

RESYNC = "integrations.walkme.io/full-resync"


def test_a_run_records_sent_unchanged_kept_and_why_it_sent_everyone() -> None:
    result = SyncResult(result="Succeeded", reason="Synced", rows_read=1000, rows_written=12, sent=12,
                        unchanged=988, users_kept=4)
    decision = finish_first_run(result)
    run = wire(decision.status)["runs"][0]
    assert (run["sent"], run["unchanged"], run["usersKept"]) == (12, 988, 4) and "fullSend" not in run
    assert "988 unchanged (not sent)" in run["message"] and "4 sent before and not in this file" in run["message"]
    assert "lastFullSendTime" not in wire(decision.status)
    full = finish_first_run(SyncResult(result="Succeeded", reason="Synced", rows_read=5, rows_written=5, sent=5,
                                       unchanged=0, full_send="NoState", message="full send (NoState: no state)"))
    assert wire(full.status)["runs"][0]["fullSend"] == "NoState"
    assert wire(full.status)["lastFullSendTime"] == "2026-11-25T10:08:00Z"
    assert "full send (NoState" in wire(full.status)["runs"][0]["message"]


def test_a_dry_run_full_send_is_no_full_send() -> None:
    dry = finish_first_run(SyncResult(result="Succeeded", reason="DryRun", dry_run=True, sent=5, full_send="NoState",
                                      message="dry run: nothing written"))
    assert "lastFullSendTime" not in wire(dry.status)


def test_the_full_resync_annotation_asks_for_a_full_send_until_a_run_makes_one() -> None:
    first = finish_first_run(SyncResult(result="Succeeded", reason="Synced", sent=1, full_send="NoState"))
    asked = run_plan(view(status=first.status, annotations={RESYNC: "1"}), now=NOW + timedelta(minutes=2))
    assert asked.job is not None and asked.job[0].state.full_send and wire(asked.status)["fullSendRequested"]
    failed = finish(asked.status, SyncResult(result="Failed", reason="TransientError"), {RESYNC: "1"},
                    now=NOW + timedelta(minutes=3))
    assert wire(failed.status)["fullSendRequested"], "a failed run leaves the request"
    retry = run_plan(view(status=failed.status, annotations={RESYNC: "1", "integrations.walkme.io/requested-at": "x"}),
                     now=NOW + timedelta(minutes=4))
    assert retry.job is not None and retry.job[0].state.full_send
    done = finish(retry.status, SyncResult(result="Succeeded", reason="Synced", sent=1, full_send="Requested"),
                  {RESYNC: "1", "integrations.walkme.io/requested-at": "x"}, now=NOW + timedelta(minutes=5))
    stored = wire(done.status)
    assert not stored.get("fullSendRequested") and stored["lastFullSendTime"] == "2026-11-25T10:12:00Z"


@pytest.mark.parametrize("interval", ["a week", "7d", "30s", ""])
def test_a_full_resend_interval_that_is_no_duration_of_a_minute_or_more_is_refused(interval: str) -> None:
    with pytest.raises(ValueError, match="fullResendInterval"):
        IntegrationSpec.model_validate(inbound_spec(fullResendInterval=interval))


def test_change_detection_is_on_by_default_with_a_weekly_full_send() -> None:
    spec = IntegrationSpec.model_validate(inbound_spec())
    assert (spec.change_detection, spec.full_resend_interval) == (True, "168h")


def test_an_interval_full_send_reads_the_file_even_if_it_has_not_changed() -> None:
    """A scheduled run of an unchanged file was skipped (SourceUnchanged) before change detection could see
    that fullResendInterval had passed, so WalkMe went unhealed for as long as the file stayed the same."""
    spec = inbound_spec(schedule="0 * * * *", fullResendInterval="24h")
    started = run_plan(view(spec=spec)).status
    name = started.active_run
    result = SyncResult(result="Succeeded", reason="Synced", sent=3, full_send="NoState", source_fingerprint="etag-1")
    first = run_plan(view(spec=spec, status=started), jobs=[finished_job(name, "Succeeded")],
                     pods={name: [pod_with(name, result, exit_code=0)]}, now=NOW + timedelta(minutes=1))
    assert wire(first.status)["sourceFingerprint"] == "etag-1"
    soon = run_plan(view(spec=spec, status=first.status), now=NOW + timedelta(hours=3))
    assert soon.job is not None and soon.job[0].state.source_fingerprint == "etag-1", "unchanged file: skipped"
    due = run_plan(view(spec=spec, status=first.status), now=NOW + timedelta(hours=25))
    assert due.job is not None and due.job[0].state.source_fingerprint is None, "read it: the full send is due"
    off = inbound_spec(schedule="0 * * * *", fullResendInterval="24h", changeDetection=False)
    plain = run_plan(view(spec=off, status=first.status), now=NOW + timedelta(hours=25))
    assert plain.job is not None and plain.job[0].state.source_fingerprint == "etag-1"
