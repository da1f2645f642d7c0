"""A tenant reaches nothing the admin did not grant: no borrowed identity, no cluster token sent, probes
of one namespace cannot stall another's (issue 20, rows 1-4 of its table). The tenant's own host is a
plain TCP listener on loopback that records every byte it is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.listeners import Listener
from tests.operator.helpers import (
    NS,
    OperatorHandle,
    condition,
    connection,
    eventually,
    integration,
    plan_sync,
    secret,
)
from walkme_dic.jobs.naming import LABEL_MANAGED_BY
from walkme_dic.tenancy import TenancyPolicy
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

API = "integrations.walkme.io/v1alpha1"


@pytest.fixture
async def tenant_operator(cluster: Cluster, node: NodeAgent, request: pytest.FixtureRequest,
                          ) -> AsyncIterator[OperatorHandle]:
    """The real operator with the TenancyPolicy a test names with ``@pytest.mark.parametrize(indirect)``
    or the chart's defaults (no ambient identity anywhere, any Opaque Secret)."""
    handle = OperatorHandle(cluster)
    handle.config = replace(handle.config, tenancy=getattr(request, "param", TenancyPolicy()))
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()


async def ready_condition(cluster: Cluster, name: str, reason: str, namespace: str = NS) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        cond = condition(await cluster.get(API, "Connection", namespace, name), "Ready")
        return cond if cond.get("reason") == reason else None

    return await eventually(check, timeout=40)


async def service_account_token_secret(cluster: Cluster, name: str) -> None:
    """A real service-account token Secret: the token controller fills in the ServiceAccount's token."""
    await cluster.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": NS}})
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                         "metadata": {"name": name, "namespace": NS,
                                      "annotations": {"kubernetes.io/service-account.name": "robot"}}})

    async def filled() -> bool:
        return bool(((await cluster.get("v1", "Secret", NS, name)).get("data") or {}).get("token"))

    await eventually(filled)


async def test_a_service_account_token_secret_is_never_sent(
    cluster: Cluster, tenant_operator: OperatorHandle, recording_listener: Listener,
) -> None:
    await service_account_token_secret(cluster, "robot-token")
    await cluster.patch("v1", "Secret", NS, "robot-token",  # the keys a WalkMe Connection wants, even
                        {"stringData": {"clientId": "c", "clientSecret": "s"}})
    await cluster.apply(connection("walkme", {"walkme": {"apiUrl": recording_listener.url,
                                                         "auth": {"secretRef": {"name": "robot-token"}}}}))
    cond = await ready_condition(cluster, "walkme", "SecretRefused")
    assert cond["status"] == "False" and "service-account token" in cond["message"]
    assert recording_listener.connections == 0 and not recording_listener.received


async def test_an_integration_token_from_a_service_account_secret_gets_no_job(
    cluster: Cluster, tenant_operator: OperatorHandle, backends: dict,
) -> None:
    for manifest in backends["manifests"]:
        await cluster.apply(manifest)
    await service_account_token_secret(cluster, "robot-token")
    spec = integration("import", schedule="* * * * *")["spec"]
    spec["destination"]["walkme"]["integrationTokenSecretRef"] = {"name": "robot-token", "key": "token"}
    await cluster.apply({"apiVersion": API, "kind": "Integration", "metadata": {"name": "import", "namespace": NS},
                         "spec": {**spec, "schedule": None}})

    async def refused() -> dict[str, Any] | None:
        cond = condition(await cluster.get(API, "Integration", NS, "import"), "Ready")
        return cond if cond.get("reason") == "SecretRefused" else None

    cond = await eventually(refused, timeout=40)
    assert "robot-token" in cond["message"] and cond["status"] == "False"
    await asyncio.sleep(2)  # several resync passes: still no Job for the kubelet to mount the token into
    assert await cluster.list("batch/v1", "Job", NS, f"{LABEL_MANAGED_BY}=walkme-dic") == []


def gcs_ambient(url: str) -> dict[str, Any]:
    return {"gcs": {"bucket": "reports", "endpointUrl": url}}


async def test_ambient_identity_is_refused_where_the_admin_did_not_allow_it(
    cluster: Cluster, tenant_operator: OperatorHandle, recording_listener: Listener,
) -> None:
    await cluster.apply(connection("lake", gcs_ambient(recording_listener.url)))
    cond = await ready_condition(cluster, "lake", "AmbientIdentityNotAllowed")
    assert cond["status"] == "False" and "tenancy.ambientIdentity.namespaces" in cond["message"]
    assert NS in cond["message"]
    assert recording_listener.connections == 0


@pytest.mark.parametrize("tenant_operator", [TenancyPolicy(ambient_namespaces=frozenset({NS}))], indirect=True)
async def test_allowed_ambient_identity_is_not_probed_with_the_operators_own(
    cluster: Cluster, tenant_operator: OperatorHandle, recording_listener: Listener,
) -> None:
    await cluster.apply(connection("lake", gcs_ambient(recording_listener.url)))
    await cluster.apply(connection("lake", gcs_ambient(recording_listener.url), namespace="team-b"))
    cond = await ready_condition(cluster, "lake", "AmbientIdentity")
    assert cond["status"] == "True" and "spec.job.serviceAccountName" in cond["message"]
    elsewhere = await ready_condition(cluster, "lake", "AmbientIdentityNotAllowed", namespace="team-b")
    assert elsewhere["status"] == "False"
    assert recording_listener.connections == 0


@pytest.mark.parametrize("tenant_operator", [TenancyPolicy(secret_label=("walkme-dic.io/use", "yes"))],
                         indirect=True)
async def test_only_secrets_with_the_admins_label_are_used_and_a_new_label_is_noticed_without_a_watch(
    cluster: Cluster, tenant_operator: OperatorHandle, backends: dict,
) -> None:
    await cluster.apply(secret("walkme-api", backends["walkme_secret"]))
    await cluster.apply(connection("walkme", backends["walkme_spec"]))
    cond = await ready_condition(cluster, "walkme", "SecretRefused")
    assert "walkme-dic.io/use=yes" in cond["message"]
    await cluster.patch("v1", "Secret", NS, "walkme-api", {"metadata": {"labels": {"walkme-dic.io/use": "yes"}}})
    assert (await ready_condition(cluster, "walkme", "Probed"))["status"] == "True"


async def test_a_tarpit_in_one_namespace_does_not_delay_another(
    cluster: Cluster, tenant_operator: OperatorHandle, tarpit: Listener, backends: dict,
) -> None:
    for number in range(8):
        await cluster.apply(secret(f"hook-{number}", {"signingSecret": "s"}, namespace="noisy"))
        await cluster.apply(connection(f"hook-{number}", {"webhook": {
            "url": f"https://127.0.0.1:{tarpit.port}/in", "auth": {"secretRef": {"name": f"hook-{number}"}}}},
            namespace="noisy"))
    await eventually(lambda: asyncio.sleep(0, tarpit.connections >= 2))  # the noisy probes hang now
    await cluster.apply(secret("walkme-api", backends["walkme_secret"], namespace="quiet"))
    started = asyncio.get_running_loop().time()
    await cluster.apply(connection("walkme", backends["walkme_spec"], namespace="quiet"))
    cond = await ready_condition(cluster, "walkme", "Probed", namespace="quiet")
    took = asyncio.get_running_loop().time() - started
    assert cond["status"] == "True"
    # a probe of the quiet namespace never waits for the noisy one's (10 s probe timeout in these tests)
    assert took < 8, f"the quiet namespace's probe waited {took:.1f}s behind the noisy namespace's"
    assert tarpit.connections <= 2, "one namespace ran more probes at a time than its share"

    async def one_timed_out() -> dict[str, Any] | None:  # whichever noisy probe got a slot first (a timed-out
        for number in range(8):                           # probe holds its slot until its thread ends)
            cond = condition(await cluster.get(API, "Connection", "noisy", f"hook-{number}"), "Ready")
            if cond.get("reason") == "ProbeFailed":
                return cond
        return None

    timed_out = await eventually(one_timed_out, timeout=90)
    assert timed_out["message"].startswith("cannot reach the webhook endpoint: no connection could be made")


async def test_a_run_that_failed_with_a_passing_fault_probes_its_connections_again(
    cluster: Cluster, tenant_operator: OperatorHandle, backends: dict, sync_plans: Path,
) -> None:
    for manifest in backends["manifests"]:
        await cluster.apply(manifest)
    probed = {}
    for name in ("lake", "walkme"):
        await ready_condition(cluster, name, "Probed")
        probed[name] = (await cluster.get(API, "Connection", NS, name))["status"]["lastProbeTime"]
    await asyncio.sleep(1.1)  # lastProbeTime has whole seconds
    plan_sync(sync_plans, "users", result={"result": "Failed", "reason": "ProviderUnavailable", "retryable": True,
                                           "message": "S3 answered 503 Slow Down"})
    await cluster.apply(integration("users", job={"backoffLimit": 0}))

    async def probed_again() -> bool:
        statuses = [(await cluster.get(API, "Connection", NS, name))["status"] for name in probed]
        return all(s["lastProbeTime"] != probed[n] for s, n in zip(statuses, probed, strict=True))

    await eventually(probed_again, timeout=40)  # the probe interval is 10 minutes: only the failed run explains it


async def test_runs_over_the_namespace_cap_wait_in_status_and_start_when_one_ends(
    cluster: Cluster, node: NodeAgent, backends: dict, sync_plans: Path,
) -> None:
    handle = OperatorHandle(cluster)
    handle.config = replace(handle.config, max_runs_per_namespace=1)
    for manifest in backends["manifests"]:
        await cluster.apply(manifest)
    plan_sync(sync_plans, "first", sleep=6)
    await handle.start()
    try:
        await cluster.apply(integration("first"))

        async def running() -> bool:
            return bool((await cluster.get(API, "Integration", NS, "first")).get("status", {}).get("activeRun"))

        await eventually(running)
        await cluster.apply(integration("second"))

        async def queued() -> dict[str, Any] | None:
            cond = condition(await cluster.get(API, "Integration", NS, "second"), "Reconciling")
            return cond if cond.get("reason") == "RunQueued" else None

        cond = await eventually(queued)
        assert "runs.maxPerNamespace" in cond["message"] and "namespace 'team-a'" in cond["message"]
        assert [j["metadata"]["name"] for j in await cluster.list("batch/v1", "Job", NS)] == \
            [(await cluster.get(API, "Integration", NS, "first"))["status"]["activeRun"]]

        async def second_ran() -> bool:
            runs = (await cluster.get(API, "Integration", NS, "second")).get("status", {}).get("runs") or []
            return any(r["result"] == "Succeeded" for r in runs)

        await eventually(second_ran, timeout=60)
        first = (await cluster.get(API, "Integration", NS, "first"))["status"]["runs"][0]
        second = (await cluster.get(API, "Integration", NS, "second"))["status"]["runs"][0]
        assert second["startTime"] >= first["completionTime"], "the second started only after the first ended"
    finally:
        await handle.stop()
