"""The operator end to end against the dev cluster: Connections, Integrations, Jobs, status, Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.operator.helpers import (
    API,
    NS,
    OperatorHandle,
    condition,
    connection,
    eventually,
    integration,
    plan_sync,
    secret,
    without_rules,
)
from walkme_dic.conditions import parse_time
from walkme_dic.jobs.naming import LABEL_MANAGED_BY
from walkme_dic.kube import ApiError
from walkme_dic_dev.cluster import Cluster, load_crds

REQUESTED_AT = "integrations.walkme.io/requested-at"


async def get(cluster: Cluster, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
    return await cluster.get(API, kind, namespace, name)


async def jobs(cluster: Cluster, namespace: str = NS) -> list[dict[str, Any]]:
    return await cluster.list("batch/v1", "Job", namespace, f"{LABEL_MANAGED_BY}=walkme-dic")


async def ready(cluster: Cluster, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await get(cluster, kind, name, namespace)
        return obj if condition(obj, "Ready").get("status") == "True" else None

    return await eventually(check)


async def finished_runs(cluster: Cluster, name: str, count: int = 1, namespace: str = NS,
                        timeout: float = 30) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await get(cluster, "Integration", name, namespace)
        runs = (obj.get("status") or {}).get("runs") or []
        done = [r for r in runs if r["result"] != "Running"]
        return obj if len(done) >= count and not obj["status"].get("activeRun") else None

    return await eventually(check, timeout=timeout)


async def events_for(cluster: Cluster, name: str, namespace: str = NS) -> list[dict[str, Any]]:
    return [e for e in await cluster.list("v1", "Event", namespace)
            if e.get("involvedObject", {}).get("name") == name]


async def events_once_emitted(cluster: Cluster, name: str, *reasons: str) -> list[dict[str, Any]]:
    """The object's Events once one of each reason is there: the operator posts Events after it
    writes status, so a test that has just seen the status must wait for them."""

    async def all_there() -> list[dict[str, Any]] | None:
        events = await events_for(cluster, name)
        return events if set(reasons) <= {e["reason"] for e in events} else None

    return await eventually(all_there)


async def test_missing_secret_then_fixed(cluster: Cluster, operator: OperatorHandle, backends: dict) -> None:
    await cluster.apply(connection("walkme", backends["walkme_spec"]))

    async def not_found() -> dict[str, Any] | None:
        cond = condition(await get(cluster, "Connection", "walkme"), "Ready")
        return cond if cond.get("reason") == "SecretNotFound" else None

    cond = await eventually(not_found)
    assert cond["status"] == "False" and "walkme-api" in cond["message"]
    await cluster.apply(secret("walkme-api", backends["walkme_secret"]))
    obj = await ready(cluster, "Connection", "walkme")
    assert obj["status"]["provider"] == "walkme" and obj["status"]["observedGeneration"] == 1
    assert condition(obj, "Ready")["reason"] == "Probed"
    reasons = [e["reason"] for e in await events_once_emitted(cluster, "walkme", "SecretNotFound", "Probed")]
    assert "SecretNotFound" in reasons and "Probed" in reasons


async def test_wrong_credentials_fail_the_probe_without_leaking(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    leaked = "do-not-leak-7f3a9"
    await cluster.apply(secret("walkme-api", {"clientId": backends["walkme_secret"]["clientId"],
                                              "clientSecret": leaked}))
    await cluster.apply(connection("walkme", backends["walkme_spec"]))

    async def failed() -> dict[str, Any] | None:
        cond = condition(await get(cluster, "Connection", "walkme"), "Ready")
        return cond if cond.get("status") == "False" and cond.get("reason") != "SecretNotFound" else None

    cond = await eventually(failed)
    assert cond["reason"] == "AuthenticationFailed"
    events = await events_once_emitted(cluster, "walkme", "AuthenticationFailed")
    everything = str(await get(cluster, "Connection", "walkme")) + str(events)
    assert leaked not in everything
    await cluster.apply(secret("walkme-api", backends["walkme_secret"]))  # fixing the Secret re-probes at once
    assert condition(await ready(cluster, "Connection", "walkme"), "Ready")["reason"] == "Probed"


async def apply_connections(cluster: Cluster, backends: dict) -> None:
    for obj in backends["manifests"]:
        await cluster.apply(obj)
    await ready(cluster, "Connection", "walkme")
    await ready(cluster, "Connection", "lake")


async def test_integration_waits_for_its_connection(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await cluster.apply(integration("users"))

    async def blocked() -> dict[str, Any] | None:
        cond = condition(await get(cluster, "Integration", "users"), "Ready")
        return cond if cond.get("reason") == "ConnectionNotFound" else None

    await eventually(blocked)
    await asyncio.sleep(1)
    assert await jobs(cluster) == []
    await apply_connections(cluster, backends)
    obj = await finished_runs(cluster, "users")
    assert len(await jobs(cluster)) == 1
    assert condition(obj, "Ready")["status"] == "True"


async def test_success_creates_exactly_one_job_and_records_the_run(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
) -> None:
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", result={"result": "Succeeded", "reason": "Synced", "rowsRead": 3,
                                           "rowsWritten": 2, "rowsRejected": 1})
    succeeded = {"namespace": NS, "integration": "users", "result": "Succeeded"}
    runs_before = REGISTRY.get_sample_value("walkme_dic_runs_total", succeeded) or 0
    await cluster.apply(integration("users"))
    obj = await finished_runs(cluster, "users")

    async def counted() -> float | None:  # the operator counts the run after its status write and Events
        value = REGISTRY.get_sample_value("walkme_dic_runs_total", succeeded) or 0
        return value if value > runs_before else None

    assert await eventually(counted, timeout=10) == runs_before + 1
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsRead"], run["rowsWritten"], run["rowsRejected"]) == ("Succeeded", 3, 2, 1)
    assert "usersKept" not in run, "WalkMe publishes no list of a token's users (issue 24)"
    assert condition(obj, "Synced")["status"] == "True"
    assert condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]
    all_jobs = await jobs(cluster)
    assert [j["metadata"]["name"] for j in all_jobs] == [run["name"]]
    job = all_jobs[0]
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    reasons = [e["reason"] for e in await events_once_emitted(cluster, "users", "RunStarted", "RunSucceeded")]
    assert reasons.count("RunStarted") == 1 and reasons.count("RunSucceeded") == 1


async def test_failure_sets_synced_false_with_the_message(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
) -> None:
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", result={"result": "Failed", "reason": "AuthenticationFailed",
                                           "message": "S3 refused the credentials for bucket 'lake'"})
    await cluster.apply(integration("users", job={"backoffLimit": 0}))
    obj = await finished_runs(cluster, "users")
    synced = condition(obj, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "AuthenticationFailed")
    assert "refused the credentials" in synced["message"]
    assert condition(obj, "Ready")["reason"] == "RunFailed"
    warnings = [e for e in await events_once_emitted(cluster, "users", "RunFailed") if e["reason"] == "RunFailed"]
    assert warnings and warnings[0]["type"] == "Warning"


async def start_slow_run(cluster: Cluster, backends: dict, sync_plans: Path, seconds: float) -> None:
    """Integration "users" with a run that takes ``seconds``; returns once its Job exists."""
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", sleep=seconds)
    await cluster.apply(integration("users"))
    await eventually(lambda: jobs(cluster))


async def test_restarted_operator_adopts_the_running_job(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
) -> None:
    await start_slow_run(cluster, backends, sync_plans, seconds=4)
    await operator.restart()
    obj = await finished_runs(cluster, "users")
    assert len(await jobs(cluster)) == 1
    assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded"]


async def test_suspended_integration_starts_no_job(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users", suspend=True, schedule="* * * * *"))
    obj = await ready(cluster, "Integration", "users")
    assert condition(obj, "Ready")["reason"] == "Suspended"
    await asyncio.sleep(1.5)
    assert await jobs(cluster) == []
    resumed = datetime.now(UTC).replace(microsecond=0)  # creationTimestamp has whole seconds
    await cluster.patch(API, "Integration", NS, "users", {"spec": {"suspend": False}})
    await finished_runs(cluster, "users")
    # one run on resuming; a minute's slot may add another by now, but none was started while suspended
    started = [parse_time(job["metadata"]["creationTimestamp"]) for job in await jobs(cluster)]
    assert started and all(moment is not None and moment >= resumed for moment in started), (resumed, started)


async def test_requested_at_runs_once_per_value(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users"))
    await finished_runs(cluster, "users")
    await cluster.patch(API, "Integration", NS, "users", {"metadata": {"annotations": {REQUESTED_AT: "one"}}})
    obj = await finished_runs(cluster, "users", count=2)
    assert obj["status"]["lastHandledRequestedAt"] == "one"
    assert obj["status"]["runs"][0]["trigger"] == "Requested"
    await asyncio.sleep(1.5)
    assert len(await jobs(cluster)) == 2


async def test_schedule_slot_starts_a_run(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users", schedule="0 * * * *"))
    obj = await finished_runs(cluster, "users")
    assert obj["status"]["nextScheduleTime"].endswith(":00:00Z")
    assert all(r["trigger"] != "Schedule" for r in obj["status"]["runs"])
    # Two hours pass: the status says the last slot handled was long ago, so the current slot is due.
    assert cluster.client is not None
    await cluster.client.patch(await cluster.resource(API, "Integration"), NS, "users",
                               {"status": {"lastScheduleTime": "2020-01-01T00:00:00Z"}}, status=True)
    obj = await eventually(lambda: _scheduled_run(cluster))
    assert obj["status"]["lastScheduleTime"].endswith(":00:00Z")
    assert obj["status"]["lastScheduleTime"] > "2020-01-01T00:00:00Z"
    assert len(await jobs(cluster)) == 2


async def _scheduled_run(cluster: Cluster) -> dict[str, Any] | None:
    obj = await get(cluster, "Integration", "users")
    runs = obj["status"].get("runs") or []
    return obj if any(r["trigger"] == "Schedule" and r["result"] == "Succeeded" for r in runs) else None


@pytest.fixture
async def crds_without_transition_rules(cluster: Cluster) -> AsyncIterator[None]:
    await cluster.install_crds([without_rules(crd, lambda rule: "oldSelf" in rule["rule"]) for crd in load_crds()])
    try:
        yield
    finally:
        await cluster.install_crds()


async def test_apiserver_refuses_a_changed_connection_ref(cluster: Cluster, backends: dict) -> None:
    await cluster.apply(integration("users"))
    with pytest.raises(ApiError) as refused:
        await cluster.patch(API, "Integration", NS, "users", {"spec": {"connectionRef": {"name": "other"}}})
    assert refused.value.status == 422 and "connectionRef cannot be changed" in str(refused.value)


async def test_changed_connection_ref_is_refused(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
    crds_without_transition_rules: None,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users"))
    await finished_runs(cluster, "users")
    await cluster.patch(API, "Integration", NS, "users", {"spec": {"connectionRef": {"name": "other"}}})

    async def stalled() -> dict[str, Any] | None:
        obj = await get(cluster, "Integration", "users")
        return obj if condition(obj, "Stalled").get("status") == "True" else None

    obj = await eventually(stalled)
    cond = condition(obj, "Stalled")
    assert cond["reason"] == "ConnectionRefImmutable" and "'lake'" in cond["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert len(await jobs(cluster)) == 1


async def test_deleting_an_integration_leaves_no_jobs(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
) -> None:
    await start_slow_run(cluster, backends, sync_plans, seconds=30)
    await cluster.delete(API, "Integration", NS, "users")

    async def gone() -> bool:
        return not await jobs(cluster) and not await cluster.list("v1", "Pod", NS)

    await eventually(gone)


async def test_hundred_integrations_all_become_ready(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await apply_connections(cluster, backends)
    for index in range(100):
        await cluster.apply(integration(f"users-{index:03d}"))

    async def all_ready() -> bool:
        items = await cluster.list(API, "Integration", NS)
        return len(items) == 100 and all(condition(i, "Ready").get("status") == "True" for i in items)

    await eventually(all_ready, timeout=240, interval=1)
    assert len(await jobs(cluster)) == 100


def outbound_to(path: str, name: str, namespace: str = NS) -> dict[str, Any]:
    return integration(name, namespace, direction="Outbound", source={"walkme": {"dataset": "users"}},
                       destination={"file": {"path": path}},
                       mapping={"key": {"source": "userId", "destination": "user_id"}})


async def test_another_namespace_writing_the_same_object_through_its_own_connection_waits(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    """Issue 20: a tenant's Connection onto the bucket another tenant exports to, its prefix one folder deeper
    (dic/exports/ + shared.csv is dic/ + exports/shared.csv)."""
    await apply_connections(cluster, backends)
    await cluster.apply(outbound_to("exports/shared.csv", "first"))
    await finished_runs(cluster, "first")
    other = "team-b"
    await cluster.ensure_namespace(other)
    for manifest in backends["manifests"]:
        copy = {**manifest, "metadata": {**manifest["metadata"], "namespace": other}}
        if manifest["kind"] == "Connection" and manifest["metadata"]["name"] == "lake":
            copy["spec"] = {"s3": {**manifest["spec"]["s3"], "prefix": "dic/exports/"}}
        await cluster.apply(copy)
    await ready(cluster, "Connection", "lake", other)
    await cluster.apply(outbound_to("shared.csv", "second", other))
    await cluster.apply(outbound_to("own.csv", "third", other))
    await ready(cluster, "Integration", "third", other)  # another object under the same prefix is free

    async def blocked() -> dict[str, Any] | None:
        cond = condition(await get(cluster, "Integration", "second", other), "Ready")
        return cond if cond.get("reason") == "DestinationConflict" else None

    cond = await eventually(blocked)
    assert cond["status"] == "False" and "another namespace" in cond["message"]
    assert "first" not in cond["message"] and NS not in cond["message"]
    assert [j["metadata"]["ownerReferences"][0]["name"] for j in await jobs(cluster, other)] == ["third"]


async def test_a_second_integration_writing_the_same_file_waits_until_the_first_is_gone(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(outbound_to("exports/shared.csv", "first"))
    await finished_runs(cluster, "first")
    await cluster.apply(outbound_to("exports/shared.csv", "second"))
    [warning] = await events_once_emitted(cluster, "second", "DestinationConflict")
    assert "Integration 'first' already writes 'exports/shared.csv'" in warning["message"]
    second = await get(cluster, "Integration", "second")
    assert (condition(second, "Ready")["status"], condition(second, "Ready")["reason"]) == \
        ("False", "DestinationConflict")
    assert [j["metadata"]["ownerReferences"][0]["name"] for j in await jobs(cluster)] == ["first"]
    await cluster.delete(API, "Integration", NS, "first")
    await finished_runs(cluster, "second")
