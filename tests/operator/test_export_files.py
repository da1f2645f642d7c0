"""dataset exportFiles with the real operator against the real control plane: the Connection of the bucket
WalkMe exports into (spec.source.walkme.exportFiles.connectionRef) missing, then of the wrong kind, then right.
Each step is what `kubectl get/describe` shows a person: Ready, its reason and message, Stalled, one Warning."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.fixtures.servers import s3_client
from tests.operator.helpers import API, NS, OperatorHandle, condition, connection, eventually, integration
from tests.operator.test_operator import apply_connections, events_once_emitted, finished_runs, get, jobs
from walkme_dic.kube import ApiError
from walkme_dic_dev.cluster import Cluster

FIELD = "spec.source.walkme.exportFiles.connectionRef"


EXPORT_FILES = {"walkme": {"dataset": "exportFiles", "exportFiles": {"connectionRef": {"name": "exports"},
                                                                     "prefix": "usage-report/"}}}


def usage(name: str = "usage", source: dict[str, Any] = EXPORT_FILES) -> dict[str, Any]:
    """An Outbound Integration reading WalkMe's export files from Connection `exports` into a file on `lake`."""
    return integration(name, direction="Outbound", source=source, destination={"file": {"path": "usage/{runId}.csv"}},
                       mapping={"key": {"source": "User ID", "destination": "user_id"}})


def export_bucket(moto: str) -> dict[str, Any]:
    """Connection `exports`: a fresh bucket on moto's S3, read with Secret `aws`."""
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    s3_client(moto).create_bucket(Bucket=bucket)
    return connection("exports", {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto,
                                         "prefix": "dic/", "auth": {"secretRef": {"name": "aws"}}}})


def secret_volumes(job: dict[str, Any]) -> dict[str, str]:
    """A Job's credential roles and the Secret each mounts."""
    return {v["name"]: v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v}


async def blocked_by(cluster: Cluster, reason: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await get(cluster, "Integration", "usage")
        return obj if condition(obj, "Ready").get("reason") == reason else None

    return await eventually(check)


async def gone(cluster: Cluster, kind: str, name: str) -> bool:
    try:
        await get(cluster, kind, name)
    except ApiError as error:
        return error.status == 404
    return False


async def test_export_connection_missing_then_of_the_wrong_kind_then_right(
    cluster: Cluster, operator: OperatorHandle, backends: dict, moto_server: str,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(usage())

    obj = await blocked_by(cluster, "ConnectionNotFound")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == f"{FIELD}: Connection 'exports' does not exist"
    assert condition(obj, "Stalled").get("status") != "True", "it waits: the Connection may still be created"
    assert obj["status"]["boundExportConnection"] == "exports"
    warned = await events_once_emitted(cluster, "usage", "ConnectionNotFound")
    assert [(e["type"], e["message"]) for e in warned] == [("Warning", ready["message"])]

    await cluster.apply(connection("exports", backends["walkme_spec"]))  # a Connection, but of the WalkMe API
    obj = await blocked_by(cluster, "ConnectionTypeMismatch")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == (f"{FIELD}: Connection 'exports' is a walkme connection; WalkMe's Data Integration "
                                "Center exports into a bucket, a container or an SFTP folder: s3, azureBlob, gcs, sftp")
    assert condition(obj, "Stalled")["status"] == "True", "waiting does not help: the Connection must change"
    await events_once_emitted(cluster, "usage", "ConnectionTypeMismatch")
    await asyncio.sleep(1)  # resync passes (0.5 s) later: still no run
    assert await jobs(cluster) == [], "no Job while the export Connection is missing or of the wrong kind"

    await cluster.delete(API, "Connection", NS, "exports")
    await eventually(lambda: gone(cluster, "Connection", "exports"))
    await cluster.apply(export_bucket(moto_server))
    obj = await finished_runs(cluster, "usage")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RunSucceeded"), ready
    assert condition(obj, "Stalled").get("status") != "True"
    [job] = await jobs(cluster)
    assert secret_volumes(job).get("exports") == "aws", "the run reads the bucket with the export Connection's Secret"


async def test_export_files_run_without_any_walkme_connection(
    cluster: Cluster, operator: OperatorHandle, backends: dict, moto_server: str,
) -> None:
    """No WalkMe API is called for exportFiles: no WalkMe Connection, no WalkMe API key, nothing to wait for."""
    for obj in backends["manifests"]:
        if obj["metadata"]["name"] in ("aws", "lake"):
            await cluster.apply(obj)
    await cluster.apply(export_bucket(moto_server))
    spec = usage()
    del spec["spec"]["walkmeConnectionRef"]
    await cluster.apply(spec)
    obj = await finished_runs(cluster, "usage")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RunSucceeded"), ready
    [job] = await jobs(cluster)
    assert set(secret_volumes(job)) == {"external", "exports"}, "no WalkMe API key mounted"

    refused = usage("audit", source={"walkme": {"dataset": "activityLog"}})
    del refused["spec"]["walkmeConnectionRef"]
    try:
        await cluster.apply(refused)
    except ApiError as error:
        assert error.status == 422 and "walkmeConnectionRef: name the WalkMe account Connection" in error.message
    else:
        raise AssertionError("the API server admitted an activityLog Integration without walkmeConnectionRef")
