"""Fault matrix, process level: a sync killed mid-run, an operator whose status writes fail, restarts.

Each case asserts the destination (one complete object, no duplicates, no unfinished multipart
upload), the Integration's status and history, and that a run slot has one Job.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal

from tests.e2e.test_flows import put
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import NS, OperatorHandle, condition, eventually, integration
from tests.operator.test_operator import apply_connections, events_once_emitted, finished_runs, jobs
from walkme_dic.kube import ApiError, Resource
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

POLICIES = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", namespaced=False)
POLICY_BINDINGS = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", namespaced=False)
OUTAGE = "refuse-integration-status"
USERS = 450_000  # ~36 MB of CSV: 16 MiB parts, so the kill lands while the multipart upload is open


async def test_sync_killed_mid_upload_is_retried_by_the_job_without_leftovers(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, walkme: FakeWalkMe,
    moto_server: str,
) -> None:
    walkme.seed_synthetic_users(USERS)
    bucket, s3 = backends["bucket"], s3_client(moto_server)
    await apply_connections(cluster, backends)
    await cluster.apply(integration(
        "export", direction="Outbound", source={"walkme": {"dataset": "users"}},
        destination={"file": {"path": "exports/users.csv"}},
        mapping={"key": {"source": "userId", "destination": "user_id"},
                 "fields": [{"source": "email", "destination": "email"},
                            {"source": "lastSeen", "destination": "last_seen"},
                            {"source": "updatedAt", "destination": "updated_at"}]}, job={"backoffLimit": 2}))

    async def upload_in_progress() -> bool:
        return bool(s3.list_multipart_uploads(Bucket=bucket).get("Uploads"))

    await eventually(upload_in_progress, timeout=60, interval=0.05)
    first = next(iter(node.pods.values())).containers["sync"]
    assert first.process is not None and first.process.returncode is None
    os.killpg(first.process.pid, signal.SIGKILL)  # no chance to abort its multipart upload

    obj = await finished_runs(cluster, "export")
    assert condition(obj, "Synced")["status"] == "True"
    [run] = obj["status"]["runs"]
    assert (run["result"], run["rowsWritten"]) == ("Succeeded", USERS)
    [job] = await jobs(cluster)
    assert (job["status"].get("failed"), job["status"].get("succeeded")) == (1, 1)
    assert len(node.pods) == 2
    body = s3.get_object(Bucket=bucket, Key="dic/exports/users.csv")["Body"].read().decode()
    ids = [row["user_id"] for row in csv.DictReader(io.StringIO(body))]
    assert len(ids) == USERS and len(set(ids)) == USERS, "every user exactly once"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], "the retry aborted the leftover"
    events = await events_once_emitted(cluster, "export", "RunSucceeded")
    assert [e["reason"] for e in events].count("RunSucceeded") == 1


async def test_failed_status_writes_and_a_restart_record_the_run_once(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, walkme: FakeWalkMe,
    moto_server: str,
) -> None:
    """The API server refuses every Integration status write while the run starts and ends; the
    operator is restarted meanwhile. The run is recorded once, from its Job, when writes work again."""
    await apply_connections(cluster, backends)
    put(moto_server, backends["bucket"], "users.csv", b"id,active\nu1,true\nu2,false\n")
    await refuse_status_writes(cluster)
    await cluster.apply(integration("hr"))
    await eventually(lambda: jobs(cluster))

    async def job_finished() -> bool:
        [job] = await jobs(cluster)
        return bool(job["status"].get("succeeded"))

    await eventually(job_finished)
    assert walkme.users(WALKME_TOKEN) == {"u1": {"active": "true"}, "u2": {"active": "false"}}
    obj = await cluster.get("integrations.walkme.io/v1alpha1", "Integration", NS, "hr")
    assert not (obj.get("status") or {}).get("runs"), "no status write got through"
    refused_before_restart = await refusals(cluster)
    assert refused_before_restart > 1, "the operator tried to write status and was refused"
    await operator.restart()

    async def refused_again() -> bool:
        return await refusals(cluster) > refused_before_restart

    await eventually(refused_again)
    await cluster.client.delete(POLICY_BINDINGS, "", OUTAGE)

    obj = await finished_runs(cluster, "hr")
    assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded"]
    assert condition(obj, "Synced")["status"] == "True"
    assert obj["status"]["runs"][0]["rowsWritten"] == 2
    assert len(await jobs(cluster)) == 1, "one Job for the run slot, adopted after the restart"
    events = await events_once_emitted(cluster, "hr", "RunSucceeded")
    assert [e["reason"] for e in events].count("RunSucceeded") == 1


async def refuse_status_writes(cluster: Cluster) -> None:
    """An outage of Integration status writes, made the real way: a ValidatingAdmissionPolicy that denies
    every update of integrations/status. Returns once the API server enforces it (a write of the admin's own
    to a probe Integration is refused)."""
    await cluster.client.create(POLICIES, "", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": OUTAGE},
        "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": [{
            "apiGroups": ["integrations.walkme.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
            "resources": ["integrations/status"]}]},
            "validations": [{"expression": "false", "message": "status writes are down for this test"}]}})
    await cluster.client.create(POLICY_BINDINGS, "", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": OUTAGE}, "spec": {"policyName": OUTAGE, "validationActions": ["Deny"]}})
    await cluster.apply(integration("outage-probe", suspend=True))  # suspended: the operator starts no Job for it
    resource = await cluster.resource("integrations.walkme.io/v1alpha1", "Integration")

    async def enforced() -> bool:
        try:
            await cluster.client.patch(resource, NS, "outage-probe", {"status": {"message": "probe"}}, status=True)
        except ApiError as error:
            return error.status == 422 and "denied request" in str(error)
        return False

    await eventually(enforced)
    await cluster.client.delete(resource, NS, "outage-probe")


async def refusals(cluster: Cluster) -> int:
    """How many writes the outage policy denied, from the API server's own metrics."""
    metrics = await asyncio.to_thread(cluster.control_plane.metrics)
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("apiserver_validating_admission_policy_check_total{")
                   and f'policy="{OUTAGE}"' in line and 'enforcement_action="deny"' in line))
