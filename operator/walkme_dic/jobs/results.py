"""Reading a run's outcome from its Job and Pods (pure functions over API objects)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from walkme_dic import reasons
from walkme_dic.api.run import SyncResult
from walkme_dic.conditions import parse_time
from walkme_dic.jobs.manifest import SYNC_CONTAINER

RunState = Literal["Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobSummary:
    """What the operator keeps (in its index) of one sync Job."""

    name: str
    uid: str
    owner_uid: str
    state: RunState
    start_time: str | None
    completion_time: str | None  # completionTime, or when a failed Job's Failed condition became True
    condition_reason: str
    condition_message: str


@dataclass(frozen=True)
class PodSummary:
    """What the operator keeps of one sync Pod: enough to read the termination message, or why it has none."""

    name: str
    job_name: str
    creation: str
    exit_code: int | None
    message: str
    eviction: str = ""  # the kubelet's words when it evicted the Pod (status.reason Evicted)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None or bool(self.eviction)


def summarize_job(job: dict[str, Any]) -> JobSummary:
    status = job.get("status") or {}
    metadata = job.get("metadata") or {}
    state: RunState = "Running"
    reason = message = ""
    finished = status.get("completionTime")
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet") and state != "Failed":
            state = "Succeeded"  # the Job controller writes SuccessCriteriaMet before completionTime
            finished = finished or condition.get("lastTransitionTime")
        elif condition.get("type") in ("Failed", "FailureTarget"):
            state, reason, message = "Failed", condition.get("reason", ""), condition.get("message", "")
            finished = finished or condition.get("lastTransitionTime")
    owners = [o for o in metadata.get("ownerReferences") or [] if o.get("controller")]
    return JobSummary(
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        owner_uid=owners[0]["uid"] if owners else "",
        state=state,
        start_time=status.get("startTime"),
        completion_time=finished,
        condition_reason=reason,
        condition_message=message,
    )


def summarize_pod(pod: dict[str, Any]) -> PodSummary | None:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    job_name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if not job_name:
        return None
    status = pod.get("status") or {}
    exit_code, message = None, ""
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if container.get("name") == SYNC_CONTAINER and terminated:
            exit_code, message = terminated.get("exitCode"), terminated.get("message") or ""
    evicted = status.get("reason") == "Evicted"
    return PodSummary(
        name=metadata.get("name", ""),
        job_name=job_name,
        creation=metadata.get("creationTimestamp", ""),
        exit_code=exit_code,
        message=message,
        eviction=(status.get("message") or "no reason given").strip() if evicted else "",
    )


def awaiting_pod(job: JobSummary, pods: list[PodSummary], now: datetime, grace: timedelta) -> bool:
    """The Job has finished but no terminated Pod has been seen yet, and it finished less than ``grace`` ago.

    Jobs and Pods arrive on separate watch streams, so a Job's completion can be seen before its Pod's
    termination message; reading the result then would record a false NoResult.
    """
    if job.state == "Running" or any(p.finished for p in pods):
        return False
    finished = parse_time(job.completion_time)
    return finished is not None and now - finished < grace


def read_result(job: JobSummary, pods: list[PodSummary]) -> SyncResult:
    """The run's SyncResult: the newest pod's termination message, or a failure that says why not."""
    finished = sorted((p for p in pods if p.finished), key=lambda p: p.creation)
    for pod in reversed(finished):
        parsed = parse_termination_message(pod.message)
        if parsed is not None:
            return parsed
    evicted = [pod for pod in finished if pod.eviction]
    if job.state == "Failed" and evicted:
        return SyncResult(result="Failed", reason=reasons.EVICTED, message=_evicted(evicted[-1]))
    if job.state == "Failed":
        why = job.condition_message or job.condition_reason or "the Job failed"
        tail = f"; last output: {finished[-1].message[-300:]}" if finished and finished[-1].message else ""
        return SyncResult(result="Failed", reason=job.condition_reason or reasons.RUN_FAILED, message=why + tail)
    return SyncResult(
        result="Failed",
        reason=reasons.NO_RESULT,
        message="the sync Job completed but left no result in its termination message",
    )


def _evicted(pod: PodSummary) -> str:
    message = f"the node evicted the run's pod {pod.name}: {pod.eviction}"
    if any(word in pod.eviction.lower() for word in ("ephemeral", "emptydir")):
        message += ("; the run needed more disk than its ephemeral-storage limit (an inbound run spools its rows "
                    "in /tmp): raise it in spec.job.resources")
    return message


def parse_termination_message(text: str) -> SyncResult | None:
    """The result a Job wrote; usersKept is back since issue 23 (counted from the change detection state; a Job
    of a release before issue 24 that still reports it has the same meaning, from WalkMe)."""
    try:
        values = json.loads(text)
        return SyncResult.model_validate(values)
    except (ValueError, ValidationError):
        return None
