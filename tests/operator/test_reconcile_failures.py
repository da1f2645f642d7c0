"""A reconcile that fails (issue 22): backed off, told in one Warning Event, and recovered without any other
change once the cause is gone. The failure is a real one: a ValidatingAdmissionPolicy by which kube-apiserver
refuses every write of the Integration's status, as a cluster admin's policy could."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.operator.helpers import API, NS, OperatorHandle, condition, eventually, integration
from tests.operator.test_operator import apply_connections, events_for
from walkme_dic import metrics
from walkme_dic.kube import ApiError
from walkme_dic_dev.cluster import Cluster

ADMISSION = "admissionregistration.k8s.io/v1"
FROZEN = {"integrations.walkme.io/test": "frozen"}
POLICY = {
    "apiVersion": ADMISSION, "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "frozen-integration-status"},
    "spec": {"failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{"apiGroups": ["integrations.walkme.io"], "apiVersions": ["*"],
                                                     "operations": ["UPDATE"],
                                                     "resources": ["integrations/status"]}]},
             "validations": [{"expression": "false", "message": "status writes are frozen by the cluster admin"}]},
}
BINDING = {
    "apiVersion": ADMISSION, "kind": "ValidatingAdmissionPolicyBinding",
    "metadata": {"name": "frozen-integration-status"},
    "spec": {"policyName": "frozen-integration-status", "validationActions": ["Deny"],
             "matchResources": {"objectSelector": {"matchLabels": FROZEN}}},
}


def failed_reconciles() -> float:
    return metrics.RECONCILE_ERRORS.labels("Integration")._value.get()


@pytest.fixture
async def frozen_status(cluster: Cluster) -> AsyncIterator[None]:
    """The policy and its binding, removed after the test whatever happens (they are cluster-wide)."""
    await cluster.apply(POLICY)
    await cluster.apply(BINDING)
    yield
    for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy"):
        with contextlib.suppress(ApiError):
            await cluster.delete(ADMISSION, kind, "", "frozen-integration-status")


async def test_a_failed_reconcile_backs_off_says_why_and_recovers_once_the_cause_is_gone(
    cluster: Cluster, operator: OperatorHandle, backends: dict, frozen_status: None,
) -> None:
    canary = integration("canary", suspend=True)
    canary["metadata"]["labels"] = FROZEN
    await cluster.apply(canary)
    integrations = await cluster.resource(API, "Integration")

    async def enforced() -> bool:  # the API server compiles a new policy a moment after it is stored
        try:
            await cluster.client.patch(integrations, NS, "canary", {"status": {"watermark": "x"}}, status=True)
        except ApiError as error:
            return "frozen by the cluster admin" in error.message
        return False

    await eventually(enforced)
    await cluster.delete(API, "Integration", NS, "canary")
    await apply_connections(cluster, backends)
    before = failed_reconciles()
    users = integration("users")
    users["metadata"]["labels"] = FROZEN
    await cluster.apply(users)

    async def warned() -> list[dict[str, Any]]:
        return [e for e in await events_for(cluster, "users") if e["reason"] == "ReconcileFailed"]

    warning = (await eventually(warned))[0]
    assert warning["type"] == "Warning" and "frozen by the cluster admin" in warning["message"]
    assert "tried again in 10s (attempt 1)" in warning["message"]
    first = failed_reconciles()
    await asyncio.sleep(8)  # 16 resync passes of 0.5 s: each would have failed again without the backoff
    again = failed_reconciles() - first  # its Job's watch events (created, its status) come through
    assert again <= 8, f"{again} failed reconciles in 16 resync passes: the resync pass must leave it to its retry"
    assert failed_reconciles() > before
    await cluster.delete(ADMISSION, "ValidatingAdmissionPolicyBinding", "", "frozen-integration-status")

    async def recovered() -> dict[str, Any] | None:
        obj = await cluster.get(API, "Integration", NS, "users")
        reconciling = condition(obj, "Reconciling")
        return obj if reconciling and reconciling["reason"] != "ReconcileFailed" else None

    done = await eventually(recovered, timeout=120)  # at the end of the wait, with nothing else changed
    assert condition(done, "Ready"), done.get("status")
    assert len(await warned()) == 1, "one Event for one failure, however often it was tried"
