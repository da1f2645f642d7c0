"""Per-Integration gauges come from spec and status alone (a restarted operator exports them at once)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_integration_plan import inbound_spec
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.metrics import integration_gauges
from walkme_dic.schedule import max_interval

SPEC = inbound_spec()
CREATED = "2026-11-25T09:00:00Z"
T0 = 1795597200.0  # 2026-11-25T09:00:00Z


def run(name: str, result: str, completed: str | None, rejected: int = 0) -> dict[str, Any]:
    record = {"name": name, "trigger": "Schedule", "startTime": "2026-11-25T09:00:00Z", "result": result,
              "rowsRead": 10, "rowsWritten": 10 - rejected, "rowsRejected": rejected}
    return record | ({"completionTime": completed} if completed else {})


def test_never_run_integration_exports_only_what_it_knows() -> None:
    gauges = integration_gauges(SPEC, IntegrationStatus(), CREATED)
    assert gauges.created == T0
    assert (gauges.last_success, gauges.last_run, gauges.last_run_rows) == (None, None, None)
    assert (gauges.schedule_max_interval, gauges.next_schedule) == (None, None)
    assert (gauges.rejected_rows_limit, gauges.rejected_ratio_limit) == (None, None)
    assert not gauges.last_run_failed and not gauges.suspended and not gauges.ready


def test_last_run_is_the_newest_finished_one_and_last_success_skips_failures() -> None:
    status = {
        "runs": [run("r4", "Running", None), run("r3", "Failed", "2026-11-25T12:00:00Z", rejected=4),
                 run("r2", "Skipped", "2026-11-25T11:00:00Z"), run("r1", "Succeeded", "2026-11-25T10:00:00Z")],
        "lastResult": {"result": "Failed", "reason": "TooManyRejectedRows"},
        "nextScheduleTime": "2026-11-25T18:00:00Z",
        "conditions": [{"type": "Ready", "status": "False", "reason": "RunFailed",
                        "lastTransitionTime": "2026-11-25T12:00:00Z"}],
    }
    gauges = integration_gauges(SPEC | {"schedule": "0 */6 * * *", "maxRejectedRows": 3,
                                        "maxRejectedPercent": 25}, IntegrationStatus.model_validate(status), CREATED)
    assert gauges.last_run == T0 + 3 * 3600
    assert gauges.last_run_rows == {"read": 10, "written": 6, "rejected": 4}
    assert gauges.last_success == T0 + 2 * 3600  # Skipped: the source was unchanged, which is healthy
    assert gauges.last_run_failed
    assert gauges.next_schedule == T0 + 9 * 3600
    assert gauges.schedule_max_interval == 6 * 3600
    assert (gauges.rejected_rows_limit, gauges.rejected_ratio_limit) == (3, 0.25)


def test_last_success_time_in_status_outlives_the_run_history() -> None:
    status = {"runs": [run("r9", "Failed", "2026-11-25T12:00:00Z")], "lastSuccessTime": "2026-11-20T00:00:00Z",
              "lastResult": {"result": "Failed", "reason": "X"}}
    assert integration_gauges(SPEC, IntegrationStatus.model_validate(status), CREATED).last_success == 1795132800.0


def test_invalid_spec_still_exports_the_status_side() -> None:
    failed = IntegrationStatus.model_validate({"lastResult": {"result": "Failed", "reason": "NotFound"}})
    gauges = integration_gauges({"direction": "Sideways"}, failed, CREATED)
    assert gauges.last_run_failed and gauges.schedule_max_interval is None and not gauges.suspended


@pytest.mark.parametrize(("cron", "zone", "hours"), [
    ("0 */6 * * *", "UTC", 6),
    ("*/5 * * * *", "UTC", 5 / 60),
    ("0 9 * * 1-5", "Europe/Berlin", 72),  # Friday 09:00 to Monday 09:00
    ("*/5 * * * 1-5", "UTC", 48 + 5 / 60),  # busy on weekdays: Friday 23:55 to Monday 00:00
    ("0 1,2,20 * * *", "UTC", 18),  # irregular within a day
    ("*/10 * 1 * *", "UTC", 30 * 24 + 10 / 60),  # only on the 1st: January 1st 23:50 to February 1st
    ("0 0 1 * *", "UTC", 31 * 24),
    ("0 2 * * *", "America/New_York", 25),  # the autumn DST night is an hour longer
    ("0 0 29 2 *", "UTC", 4 * 365 * 24 + 24),  # leap days only
])
def test_schedule_max_interval_is_the_longest_gap_between_slots(cron: str, zone: str, hours: float) -> None:
    assert max_interval(cron, zone) == pytest.approx(hours * 3600)
