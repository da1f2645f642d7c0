"""A run's Job the API server refused to create: backed off, and said in status and an Event (pure functions).

A refused create (a ResourceQuota's ``count/jobs.batch``, an admission policy, a namespace being deleted)
used to be logged and tried again at the next event or resync pass, unseen by the user and without pause.
Now each refusal doubles the wait before the next attempt (RETRY_BASE seconds, up to RETRY_CAP), the
Integration shows ``Ready=False``/``Reconciling=True`` with reason ``JobCreateFailed`` and the API server's
words, a Warning Event says the same once per distinct refusal, and the first create that goes through
clears it: the plan's own status replaces this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from walkme_dic import reasons
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.conditions import set_condition

RETRY_BASE = 10.0
RETRY_CAP = 300.0


@dataclass(frozen=True)
class JobRefusal:
    """The latest refusal of an Integration's Job: how many in a row, the API's message, when to try again."""

    attempts: int
    message: str
    retry_at: float  # time.monotonic()

    @property
    def wait(self) -> float:
        return backoff(self.attempts)


def backoff(attempts: int) -> float:
    """Seconds before the attempt after ``attempts`` refusals in a row: 10, 20, 40, … up to 300."""
    return min(RETRY_BASE * 2 ** (attempts - 1), RETRY_CAP)


def refused(previous: JobRefusal | None, message: str, now: float) -> JobRefusal:
    """The refusal after ``previous`` (None: the first), at monotonic time ``now``."""
    attempts = (previous.attempts if previous else 0) + 1
    return JobRefusal(attempts, message, now + backoff(attempts))


def refusal_message(job: str, refusal: JobRefusal) -> str:
    return (f"the API server refused to create Job {job!r}: {refusal.message} (attempt {refusal.attempts}; the "
            f"next in {refusal.wait:g}s). The run starts once the cause is gone (a ResourceQuota on "
            "count/jobs.batch or pods, an admission policy)")


def refusal_status(status: IntegrationStatus, message: str, *, generation: int, now: datetime) -> IntegrationStatus:
    """``status`` with Ready=False and Reconciling=True, reason JobCreateFailed: the rest as it was."""
    conditions = set_condition(status.conditions, reasons.READY, "False", reasons.JOB_CREATE_FAILED,
                               message, generation=generation, now=now)
    conditions = set_condition(conditions, reasons.RECONCILING, "True", reasons.JOB_CREATE_FAILED, message,
                               generation=generation, now=now)
    refused = status.clone()
    refused.conditions = conditions
    return refused
