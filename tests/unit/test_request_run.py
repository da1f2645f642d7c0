"""`walkme-dic run`: what the Integration's status means for the person waiting on their run (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from walkme_dic.request_run import follow, fresh_value, parse_args

ASKED = "2026-11-26T11:00:00.000001Z"


def cond(type_: str, status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-26T10:00:00Z", "observedGeneration": generation}


def integration(status: dict[str, Any], generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "users", "generation": generation}, "spec": spec, "status": status}


RUN = {"name": "users-1a2b3-r0c0ffee", "trigger": "Requested", "requestedAt": ASKED, "result": "Running"}


@pytest.mark.parametrize(("result", "message", "ok"), [
    ("Succeeded", "read 3, wrote 3, rejected 0", True),
    ("Skipped", "source unchanged since the last run; nothing to do", True),
    ("Failed", "NotFound: bucket 'x' does not exist", False),
])
def test_a_handled_request_reports_its_run(result: str, message: str, ok: bool) -> None:
    obj = integration({"lastHandledRequestedAt": ASKED, "runs": [{**RUN, "result": result, "message": message}]})
    progress = follow(obj, ASKED)
    assert (progress.state, progress.message, progress.run) == (result, message, RUN["name"])
    assert progress.done and progress.ok is ok


def test_a_handled_request_whose_run_left_the_history_reports_the_last_result() -> None:
    obj = integration({"lastHandledRequestedAt": ASKED, "runs": [],
                       "lastResult": {"result": "Failed", "reason": "NotFound", "message": "gone"}})
    progress = follow(obj, ASKED)
    assert (progress.state, progress.done, progress.ok) == ("Failed", True, False)


def test_a_running_request_is_followed() -> None:
    obj = integration({"activeRun": RUN["name"], "runs": [RUN], "lastHandledRequestedAt": "older",
                       "conditions": [cond("Ready", "True", "RunSucceeded")]})
    progress = follow(obj, ASKED)
    assert (progress.state, progress.run, progress.done) == ("Running", RUN["name"], False)


def test_an_older_request_being_handled_is_not_ours() -> None:
    obj = integration({"activeRun": "users-1a2b3-rdeadbee", "lastHandledRequestedAt": "older",
                       "runs": [{**RUN, "name": "users-1a2b3-rdeadbee", "requestedAt": "older"}]})
    progress = follow(obj, ASKED)
    assert progress.state == "Pending" and "users-1a2b3-rdeadbee" in progress.message


@pytest.mark.parametrize("reason", ["InvalidSpec", "ConnectionTypeMismatch", "ConnectionRefImmutable"])
def test_a_stalled_integration_fails_at_once_with_the_reason(reason: str) -> None:
    obj = integration({"conditions": [cond("Ready", "False", reason, "spec.schedule: bad"),
                                      cond("Stalled", "True", reason, "spec.schedule: bad")]})
    progress = follow(obj, ASKED)
    assert progress.state == "Blocked" and progress.done and not progress.ok
    assert progress.message.startswith(f"{reason}: spec.schedule: bad")


def test_a_stall_of_an_older_generation_is_waited_out() -> None:
    """The spec was just fixed: the operator has not looked at the new generation yet."""
    obj = integration({"conditions": [cond("Stalled", "True", "InvalidSpec", "bad", generation=1)]}, generation=2)
    assert follow(obj, ASKED).state == "Pending"


def test_a_suspended_integration_fails_at_once() -> None:
    progress = follow(integration({"conditions": [cond("Ready", "True", "Suspended")]}, suspend=True), ASKED)
    assert progress.state == "Blocked" and "suspend" in progress.message


@pytest.mark.parametrize(("ready", "reason"), [
    ("False", "ConnectionNotFound"), ("False", "ConnectionNotReady"), ("Unknown", "ConnectionNotReady"),
])
def test_a_waiting_integration_says_what_it_waits_for(ready: str, reason: str) -> None:
    obj = integration({"conditions": [cond("Ready", ready, reason, "Connection 'lake' is not Ready: probing"),
                                      cond("Stalled", "False", "Idle")]})
    progress = follow(obj, ASKED)
    assert progress.state == "Pending" and not progress.done
    assert reason in progress.message and "lake" in progress.message


def test_a_previous_failed_run_does_not_end_the_wait() -> None:
    obj = integration({"conditions": [cond("Ready", "False", "RunFailed", "NotFound: gone")],
                       "lastHandledRequestedAt": "older"})
    assert follow(obj, ASKED).state == "Pending"


def test_fresh_values_differ_and_sort_by_time() -> None:
    now = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    first, second = fresh_value(now), fresh_value(now + timedelta(microseconds=1))
    assert first != second and first < second and first.endswith("Z")


def test_timeout_takes_a_duration_and_refuses_other_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["users", "--wait", "--timeout", "90s"]).timeout_seconds == 90
    with pytest.raises(SystemExit) as exited:
        parse_args(["users", "--timeout", "soon"])
    assert exited.value.code == 2
    assert "--timeout" in capsys.readouterr().err
