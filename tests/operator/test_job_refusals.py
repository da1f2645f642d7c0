"""A run's Job the API server refuses (issue 22): backed off, said in status and one Warning Event, and
started without any other change once the cause is gone. The refusal is the real one: a ResourceQuota of
zero Jobs, enforced by kube-apiserver's quota admission with the quota controller's usage."""

from __future__ import annotations

from typing import Any

from tests.operator.helpers import API, NS, OperatorHandle, condition, eventually, integration
from tests.operator.test_operator import apply_connections, events_for, finished_runs, jobs
from walkme_dic_dev.cluster import Cluster

NO_JOBS = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs", "namespace": NS},
           "spec": {"hard": {"count/jobs.batch": "0"}}}


async def test_a_refused_job_backs_off_shows_why_and_starts_once_the_quota_is_gone(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await cluster.apply(NO_JOBS)

    async def enforced() -> bool:  # quota admission refuses only once the quota controller has counted
        quota = await cluster.get("v1", "ResourceQuota", NS, "no-jobs")
        return "count/jobs.batch" in ((quota.get("status") or {}).get("used") or {})

    await eventually(enforced)
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users"))

    async def refused(attempt: int) -> dict[str, Any] | None:
        obj = await cluster.get(API, "Integration", NS, "users")
        ready = condition(obj, "Ready")
        return obj if ready.get("reason") == "JobCreateFailed" and f"(attempt {attempt};" in ready["message"] \
            else None

    first = await eventually(lambda: refused(1))
    ready, reconciling = condition(first, "Ready"), condition(first, "Reconciling")
    assert (ready["status"], reconciling["status"], reconciling["reason"]) == ("False", "True", "JobCreateFailed")
    assert "exceeded quota: no-jobs" in ready["message"] and "the next in 10s" in ready["message"]
    second = await eventually(lambda: refused(2), timeout=60)  # backed off: 10 s, then 20 s
    assert "the next in 20s" in condition(second, "Ready")["message"]
    warnings = [e for e in await events_for(cluster, "users") if e["reason"] == "JobCreateFailed"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", "one Event for one refusal, however often"
    assert await jobs(cluster) == []
    await cluster.delete("v1", "ResourceQuota", NS, "no-jobs")
    done = await finished_runs(cluster, "users", timeout=90)  # after the 20 s wait: no other change needed
    assert condition(done, "Ready")["reason"] != "JobCreateFailed"
    assert len(await jobs(cluster)) == 1
