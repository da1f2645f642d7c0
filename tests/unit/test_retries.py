"""Backoff and status of a refused Job (walkme_dic/planning/job_refusals.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.planning.job_refusals import RETRY_CAP, refusal_message, refusal_status, refused

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_each_refusal_doubles_the_wait_up_to_the_cap() -> None:
    refusal, waits = None, []
    for _ in range(8):
        refusal = refused(refusal, "exceeded quota", 100.0)
        waits.append(refusal.wait)
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300] and max(waits) == RETRY_CAP
    assert refusal is not None and refusal.retry_at == 100.0 + 300 and refusal.attempts == 8


def test_the_status_says_why_and_keeps_the_rest() -> None:
    """lastRunTime: a field this version does not know (another version's) is kept too."""
    stored = {"runs": [{"name": "r1", "trigger": "Created", "result": "Succeeded"}],
              "lastRunTime": "2026-12-03T11:00:00Z",
              "conditions": [{"type": "Ready", "status": "True", "reason": "RunSucceeded", "message": "fine",
                              "lastTransitionTime": "2026-12-03T11:00:00Z", "observedGeneration": 1}]}
    status = IntegrationStatus.model_validate(stored)
    message = refusal_message("users-1", refused(None, 'jobs.batch "users-1" is forbidden: exceeded quota', 0.0))
    wire = refusal_status(status, message, generation=2, now=NOW).to_wire()
    assert {k: v for k, v in wire.items() if k != "conditions"} == \
        {k: v for k, v in status.to_wire().items() if k != "conditions"}
    assert wire["lastRunTime"] == "2026-12-03T11:00:00Z" and wire["runs"][0]["name"] == "r1"
    by_type = {c["type"]: c for c in wire["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "JobCreateFailed")
    assert (by_type["Reconciling"]["status"], by_type["Reconciling"]["observedGeneration"]) == ("True", 2)
    assert "exceeded quota (attempt 1; the next in 10s)" in by_type["Ready"]["message"]
