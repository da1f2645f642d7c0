"""The dev cluster behaves like the Kubernetes API where kopf and the operator rely on it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.operator.helpers import API, eventually, kubectl_runner
from walkme_dic.controllers.runtime import INTEGRATIONS
from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.emulator import matches, parse_label_selector
from walkme_dic.devcluster.kubelet import Kubelet
from walkme_dic.kube import ApiError


def integration_obj(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Integration", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"direction": "Inbound", **spec}}


async def test_create_sets_identity_and_generation(cluster: DevCluster) -> None:
    created = await cluster.apply(integration_obj("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    with pytest.raises(ApiError) as error:
        assert cluster.client is not None
        await cluster.client.create(cluster.resource(API, "Integration"), "ns", integration_obj("a"))
    assert error.value.status == 409


async def test_generation_bumps_only_on_spec_changes(cluster: DevCluster) -> None:
    await cluster.apply(integration_obj("a"))
    labelled = await cluster.patch(API, "Integration", "ns", "a", {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    changed = await cluster.patch(API, "Integration", "ns", "a", {"spec": {"suspend": True}})
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(labelled["metadata"]["resourceVersion"])
    same = await cluster.patch(API, "Integration", "ns", "a", {"spec": {"suspend": True}})
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


async def test_status_subresource_is_separate(cluster: DevCluster) -> None:
    assert cluster.client is not None
    resource = cluster.resource(API, "Integration")
    await cluster.apply({**integration_obj("a"), "status": {"activeRun": "ignored"}})
    with_status = await cluster.client.patch(resource, "ns", "a", {"status": {"activeRun": "r1"},
                                                                   "spec": {"suspend": True}}, status=True)
    assert with_status["status"] == {"activeRun": "r1"} and "suspend" not in with_status["spec"]
    assert with_status["metadata"]["generation"] == 1
    main = await cluster.patch(API, "Integration", "ns", "a", {"status": {"activeRun": "r2"}})
    assert main["status"] == {"activeRun": "r1"}


async def test_merge_patch_null_deletes(cluster: DevCluster) -> None:
    assert cluster.client is not None
    resource = cluster.resource(API, "Integration")
    await cluster.apply(integration_obj("a"))
    await cluster.client.patch(resource, "ns", "a", {"status": {"activeRun": "r1", "watermark": "w"}}, status=True)
    patched = await cluster.client.patch(resource, "ns", "a", {"status": {"activeRun": None}}, status=True)
    assert patched["status"] == {"watermark": "w"}


def test_label_selectors() -> None:
    obj = {"metadata": {"labels": {"app": "sync", "tier": "batch"}}}
    assert matches(obj, parse_label_selector("app=sync,tier in (batch, web)"), {})
    assert not matches(obj, parse_label_selector("app!=sync"), {})
    assert matches(obj, parse_label_selector("tier notin (web),app,!missing"), {})
    assert not matches(obj, parse_label_selector("missing"), {})


async def test_list_filters_and_has_a_list_kind(cluster: DevCluster) -> None:
    await cluster.apply({**integration_obj("a"), "metadata": {"name": "a", "namespace": "ns", "labels": {"t": "1"}}})
    await cluster.apply(integration_obj("b"))
    assert [o["metadata"]["name"] for o in await cluster.list(API, "Integration", "ns", "t=1")] == ["a"]
    assert cluster.client is not None
    listing = await cluster.client.request("GET", cluster.resource(API, "Integration").path("ns"))
    assert listing["kind"] == "IntegrationList" and listing["metadata"]["resourceVersion"]


async def test_watch_resumes_after_a_resource_version(cluster: DevCluster) -> None:
    first = await cluster.apply(integration_obj("a"))
    path = cluster.resource(API, "Integration").path("ns")
    url = f"{cluster.url}{path}?watch=true&resourceVersion={first['metadata']['resourceVersion']}&timeoutSeconds=2"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await cluster.patch(API, "Integration", "ns", "a", {"spec": {"suspend": True}})
        await cluster.delete(API, "Integration", "ns", "a")
        lines = [json.loads(line) async for line in response.content if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("MODIFIED", "a"), ("DELETED", "a")]


async def test_finalizers_hold_deletion(cluster: DevCluster) -> None:
    await cluster.apply({**integration_obj("a"), "metadata": {"name": "a", "namespace": "ns",
                                                              "finalizers": ["example.com/hold"]}})
    await cluster.delete(API, "Integration", "ns", "a")
    held = await cluster.get(API, "Integration", "ns", "a")
    assert held["metadata"]["deletionTimestamp"]
    await cluster.patch(API, "Integration", "ns", "a", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiError):
        await cluster.get(API, "Integration", "ns", "a")


async def test_deleting_an_owner_deletes_dependents(cluster: DevCluster) -> None:
    owner = await cluster.apply(integration_obj("a"))
    ref = {"apiVersion": API, "kind": "Integration", "name": "a", "uid": owner["metadata"]["uid"], "controller": True}
    await cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "c", "namespace": "ns", "ownerReferences": [ref]}, "data": {}})
    await cluster.delete(API, "Integration", "ns", "a")
    assert await cluster.list("v1", "ConfigMap", "ns") == []


async def test_table_renders_printer_columns(cluster: DevCluster) -> None:
    await cluster.apply(integration_obj("a", schedule="0 * * * *"))
    path = cluster.resource(API, "Integration").path("ns")
    async with aiohttp.ClientSession() as session, session.get(
            cluster.url + path, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as response:
        table = await response.json()
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == \
        ["Name", "Direction", "Schedule", "Last Run", "Rows", "Ready", "Reason", "Age"]
    assert table["rows"][0]["cells"][:3] == ["a", "Inbound", "0 * * * *"]


async def test_secrets_store_string_data_as_base64(cluster: DevCluster) -> None:
    created = await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns"},
                                   "stringData": {"k": "v"}})
    assert created["data"] == {"k": "dg=="} and "stringData" not in created


def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"backoffLimit": 0, **spec, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "sync", "command": [sys.executable, "-c", code], "args": ["/dev/termination-log"],
                "env": [{"name": "SECRET_FILE", "value": "/etc/creds/key"}],
                "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds"}]}],
                "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}]}}}}


async def finished(cluster: DevCluster, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await cluster.get("batch/v1", "Job", "ns", name)
        done = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] in ("Complete", "Failed")]
        return obj if done else None

    return await eventually(check, timeout=20)


async def test_kubelet_runs_jobs_with_secret_volumes_and_termination_messages(cluster: DevCluster) -> None:
    assert cluster.client is not None
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "ns"},
                         "stringData": {"key": "from-the-secret"}})
    copy_secret = "import os,sys; open(sys.argv[1],'w').write(open(os.environ['SECRET_FILE']).read())"
    async with Kubelet(cluster.client, relist_seconds=0.1):
        await cluster.apply(job("ok", copy_secret))
        await cluster.apply(job("fails", "import sys; sys.exit(3)", backoffLimit=1))
        await cluster.apply(job("slow", "import time; time.sleep(60)", activeDeadlineSeconds=1))
        ok, fails, slow = [await finished(cluster, n) for n in ("ok", "fails", "slow")]
    assert ok["status"]["succeeded"] == 1
    assert fails["status"]["failed"] == 2 and fails["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    assert slow["status"]["conditions"][-1]["reason"] == "DeadlineExceeded"
    pods = {p["metadata"]["labels"]["job-name"]: p for p in await cluster.list("v1", "Pod", "ns", "job-name=ok")}
    terminated = pods["ok"]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (0, "from-the-secret")


async def test_kubelet_kills_the_process_of_a_deleted_job(cluster: DevCluster) -> None:
    assert cluster.client is not None
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "ns"},
                         "stringData": {"key": "x"}})
    async with Kubelet(cluster.client, relist_seconds=0.1) as kubelet:
        await cluster.apply(job("long", "import time; time.sleep(60)"))
        await eventually(lambda: _running(kubelet))
        process = next(iter(kubelet.pods.values())).process
        await cluster.delete("batch/v1", "Job", "ns", "long")
        assert process is not None
        await asyncio.wait_for(process.wait(), timeout=10)


async def _running(kubelet: Kubelet) -> bool:
    return any(p.process is not None and p.process.returncode is None for p in kubelet.pods.values())


async def test_kubectl_get_describe_annotate_and_wait_work_against_the_dev_cluster(
    cluster: DevCluster, kubectl_binary: Path, tmp_path: Path,
) -> None:
    await cluster.apply(integration_obj("a", schedule="0 * * * *"))
    await cluster.apply(integration_obj("b"))
    for name in ("a", "b"):
        obj = await cluster.get(API, "Integration", "ns", name)
        await emit_event(cluster, obj, f"Event for {name}")
    kubectl = kubectl_runner(kubectl_binary, cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    table = await kubectl("get", "wmint", "-n", "ns")
    assert table.split("\n")[0].split() == \
        ["NAME", "DIRECTION", "SCHEDULE", "LAST", "RUN", "ROWS", "READY", "REASON", "AGE"]
    assert "0 * * * *" in table
    described = await kubectl("describe", "wmint", "a", "-n", "ns")
    assert "Event for a" in described and "Event for b" not in described

    await kubectl("annotate", "wmint", "a", "-n", "ns", "--overwrite", "integrations.walkme.io/requested-at=now-1")
    annotated = await cluster.get(API, "Integration", "ns", "a")
    assert annotated["metadata"]["annotations"]["integrations.walkme.io/requested-at"] == "now-1"
    assert annotated["metadata"]["generation"] == 1, "an annotation is not a spec change"

    waiting = asyncio.create_task(kubectl("wait", "--for=condition=Ready", "wmint/a", "-n", "ns", "--timeout=20s"))
    await asyncio.sleep(1)
    assert not waiting.done()
    assert cluster.client is not None
    await cluster.client.patch(INTEGRATIONS, "ns", "a", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "RunSucceeded", "message": "",
         "lastTransitionTime": "2026-11-25T10:00:00Z", "observedGeneration": 1}]}}, status=True)
    assert "condition met" in await asyncio.wait_for(waiting, timeout=25)


async def emit_event(cluster: DevCluster, obj: dict[str, Any], message: str) -> None:
    from walkme_dic.controllers.events import emit

    assert cluster.client is not None
    await emit(cluster.client, obj, "Normal", "Test", message)
