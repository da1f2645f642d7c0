"""The dev cluster answers where kubectl and client libraries look: discovery, content types, OpenAPI,
admission over HTTP, server-side apply, Job selectors and pod logs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.operator.helpers import API, eventually, integration
from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.kubelet import Kubelet

INTEGRATIONS_PATH = "/apis/integrations.walkme.io/v1alpha1/namespaces/ns/integrations"


async def http(cluster: DevCluster, method: str, path: str, body: bytes | str | None = None,
               **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, cluster.url + path, data=body, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


async def test_core_discovery_is_group_version_v1(cluster: DevCluster) -> None:
    _, core = await http(cluster, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    names = {r["name"] for r in core["resources"]}
    assert {"namespaces", "secrets", "events", "pods", "pods/log", "pods/status", "nodes"} <= names
    _, batch = await http(cluster, "GET", "/apis/batch/v1")
    assert batch["groupVersion"] == "batch/v1" and "jobs" in {r["name"] for r in batch["resources"]}


async def test_answers_are_json_and_protobuf_only_requests_are_not_acceptable(cluster: DevCluster) -> None:
    code, status = await http(cluster, "GET", "/api/v1/namespaces", Accept="application/vnd.kubernetes.protobuf")
    assert (code, status["reason"]) == (406, "NotAcceptable")
    code, _ = await http(cluster, "GET", "/openapi/v2",
                         Accept="application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert code == 406
    code, listing = await http(cluster, "GET", "/api/v1/namespaces",
                               Accept="application/vnd.kubernetes.protobuf,application/json")
    assert (code, listing["kind"]) == (200, "NamespaceList")
    code, status = await http(cluster, "POST", "/api/v1/namespaces", b"\xd9\xd9\xf7",
                              **{"Content-Type": "application/cbor"})
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


async def kubectl(binary: Path, kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(binary), *args, env={**os.environ, "KUBECONFIG": str(kubeconfig),
                                 "KUBECACHEDIR": str(kubeconfig.parent / "cache")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_kubectl_create_sends_protobuf_that_is_decoded(
    cluster: DevCluster, kubectl_binary: Path, tmp_path: Path,
) -> None:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    for args in (("create", "namespace", "team-a"),
                 ("create", "secret", "generic", "api", "-n", "team-a", "--from-literal=token=t0k",
                  "--from-literal=id=42"),
                 ("create", "configmap", "settings", "-n", "team-a", "--from-literal=mode=fast"),
                 ("label", "namespace", "team-a", "tier=dev")):
        code, _, err = await kubectl(kubectl_binary, config, *args)
        assert code == 0, err
    namespace = await cluster.get("v1", "Namespace", "", "team-a")
    assert namespace["status"] == {"phase": "Active"} and namespace["metadata"]["labels"] == {"tier": "dev"}
    secret = await cluster.get("v1", "Secret", "team-a", "api")
    assert secret["data"] == {"token": "dDBr", "id": "NDI="} and secret["type"] == "Opaque"
    assert (await cluster.get("v1", "ConfigMap", "team-a", "settings"))["data"] == {"mode": "fast"}
    code, _, err = await kubectl(kubectl_binary, config, "create", "job", "j", "-n", "team-a", "--image=busybox")
    assert code != 0 and "protobuf of batch/v1 Job is not decoded" in err


def refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_openapi_documents_are_self_contained_and_offer_field_validation(cluster: DevCluster) -> None:
    _, root = await http(cluster, "GET", "/openapi/v3")
    assert {"api/v1", "apis/batch/v1", "apis/integrations.walkme.io/v1alpha1"} <= set(root["paths"])
    for entry in root["paths"].values():
        _, document = await http(cluster, "GET", entry["serverRelativeURL"])
        schemas = document["components"]["schemas"]
        dangling = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in schemas}
        assert not dangling, f"{entry['serverRelativeURL']}: unresolved {dangling}"
        for path, item in document["paths"].items():
            if "patch" in item:
                params = {p["name"] for p in item["patch"]["parameters"] if p["in"] == "query"}
                assert "fieldValidation" in params, path
    _, crd_doc = await http(cluster, "GET", root["paths"]["apis/integrations.walkme.io/v1alpha1"]["serverRelativeURL"])
    integration_schema = crd_doc["components"]["schemas"]["io.walkme.integrations.v1alpha1.Integration"]
    assert integration_schema["x-kubernetes-group-version-kind"] == [
        {"group": "integrations.walkme.io", "kind": "Integration", "version": "v1alpha1"}]
    assert "x-kubernetes-validations" in integration_schema["properties"]["spec"]
    _, v2 = await http(cluster, "GET", "/openapi/v2", Accept="application/json")
    assert not {r for r in refs(v2) if r.removeprefix("#/definitions/") not in v2["definitions"]}
    assert "io.k8s.api.core.v1.Secret" in v2["definitions"]


async def test_unknown_fields_refused_when_strict_and_pruned_otherwise(cluster: DevCluster) -> None:
    body = integration("typo", "ns")
    body["spec"]["sourse"] = {"file": {"path": "x.csv"}}
    code, status = await http(cluster, "POST", INTEGRATIONS_PATH + "?fieldValidation=Strict", json.dumps(body),
                              **{"Content-Type": "application/json"})
    assert (code, status["reason"]) == (400, "BadRequest")
    assert 'strict decoding error: unknown field "spec.sourse"' in status["message"]
    code, created = await http(cluster, "POST", INTEGRATIONS_PATH, json.dumps(body),
                               **{"Content-Type": "application/json"})
    assert code == 201 and "sourse" not in created["spec"]


async def test_admission_refusal_is_a_422_status_with_causes(cluster: DevCluster) -> None:
    await cluster.apply(integration("a", "ns"))
    code, status = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/a",
                              json.dumps({"spec": {"connectionRef": {"name": "other"}}}),
                              **{"Content-Type": "application/merge-patch+json"})
    assert (code, status["kind"], status["reason"]) == (422, "Status", "Invalid")
    assert status["message"].startswith('Integration.integrations.walkme.io "a" is invalid: spec.connectionRef: ')
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.connectionRef"]
    assert (await cluster.get(API, "Integration", "ns", "a"))["spec"]["connectionRef"] == {"name": "lake"}


async def test_server_side_apply_creates_then_merges(cluster: DevCluster) -> None:
    manifest = integration("ssa", "ns", schedule="0 * * * *")
    apply = {"Content-Type": "application/apply-patch+yaml"}
    code, created = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/ssa?fieldManager=kubectl&force=false",
                               yaml.safe_dump(manifest), **apply)
    assert code == 201 and created["metadata"]["generation"] == 1
    manifest["spec"]["schedule"] = "0 2 * * *"
    del manifest["spec"]["mapping"]["activeField"]
    code, updated = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/ssa?fieldManager=kubectl",
                               yaml.safe_dump(manifest), **apply)
    assert code == 200 and updated["spec"]["schedule"] == "0 2 * * *" and updated["metadata"]["generation"] == 2
    assert updated["spec"]["mapping"]["activeField"] == "active", "field ownership is not tracked (documented)"
    manifest["spec"]["connectionRef"] = {"name": "other"}
    code, status = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/ssa", yaml.safe_dump(manifest), **apply)
    assert (code, status["reason"]) == (422, "Invalid")


def printing_job(name: str, code: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "sync"}}, "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "sync", "command": [sys.executable, "-u", "-c", code]}]}}}}


async def test_jobs_select_their_own_pods_and_serve_the_process_output_as_logs(cluster: DevCluster) -> None:
    assert cluster.client is not None
    async with Kubelet(cluster.client, relist_seconds=0.1):
        both_streams = "import sys; print('from first'); print('err', file=sys.stderr)"
        first = await cluster.apply(printing_job("first", both_streams))
        await cluster.apply(printing_job("second", "print('from second')"))
        selector = first["spec"]["selector"]["matchLabels"]
        assert selector == {"batch.kubernetes.io/controller-uid": first["metadata"]["uid"]}
        labels = first["spec"]["template"]["metadata"]["labels"]
        assert labels["job-name"] == "first" and labels["controller-uid"] == first["metadata"]["uid"]
        assert labels["app"] == "sync"

        async def done() -> list[dict[str, Any]] | None:
            pods = await cluster.list("v1", "Pod", "ns")
            return pods if len(pods) == 2 and all(p["status"]["phase"] == "Succeeded" for p in pods) else None

        await eventually(done)
        (pod,) = await cluster.list("v1", "Pod", "ns", ",".join(f"{k}={v}" for k, v in selector.items()))
        assert pod["metadata"]["labels"]["job-name"] == "first" and pod["spec"]["nodeName"] == "dev-node"
        code, log = await http(cluster, "GET", f"/api/v1/namespaces/ns/pods/{pod['metadata']['name']}/log")
        assert (code, log) == (200, "from first\nerr\n")
        _, tail = await http(cluster, "GET", f"/api/v1/namespaces/ns/pods/{pod['metadata']['name']}/log?tailLines=1")
        assert tail == "err\n"


async def test_logs_follow_a_running_process_until_it_exits(cluster: DevCluster) -> None:
    assert cluster.client is not None
    code = "import time\nfor i in range(3):\n    print(f'line {i}')\n    time.sleep(0.5)"
    async with Kubelet(cluster.client, relist_seconds=0.1):
        await cluster.apply(printing_job("slow", code))

        async def running() -> str | None:
            pods = await cluster.list("v1", "Pod", "ns")
            return pods[0]["metadata"]["name"] if pods and pods[0]["status"].get("phase") == "Running" else None

        pod = await eventually(running)
        status, log = await asyncio.wait_for(
            http(cluster, "GET", f"/api/v1/namespaces/ns/pods/{pod}/log?follow=true"), timeout=20)
    assert (status, log) == (200, "line 0\nline 1\nline 2\n")


async def test_logs_of_an_unscheduled_pod_are_a_bad_request(cluster: DevCluster) -> None:
    await cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                         "spec": {"containers": [{"name": "c", "image": "x"}]}})
    code, status = await http(cluster, "GET", "/api/v1/namespaces/ns/pods/p/log")
    assert (code, status["message"]) == (400, 'pod "p" does not have a host assigned')


async def test_deleting_a_namespace_deletes_what_is_in_it(cluster: DevCluster) -> None:
    await cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    await cluster.apply(integration("a", "gone"))
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "gone"}})
    await cluster.apply(integration("kept", "ns"))
    await cluster.delete("v1", "Namespace", "", "gone")
    assert await cluster.list(API, "Integration", "gone") == [] and await cluster.list("v1", "Secret", "gone") == []
    assert [i["metadata"]["name"] for i in await cluster.list(API, "Integration")] == ["kept"]


@pytest.mark.parametrize("name", ["", None])
async def test_create_without_a_name_is_refused_like_the_api_server(cluster: DevCluster, name: str | None) -> None:
    meta = {"namespace": "ns"} if name is None else {"name": name, "namespace": "ns"}
    code, status = await http(cluster, "POST", "/api/v1/namespaces/ns/secrets",
                              json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": meta}),
                              **{"Content-Type": "application/json"})
    assert (code, status["reason"]) == (422, "Invalid")
    assert "metadata.name: Required value: name or generateName is required" in status["message"]


async def test_kubeconfig_is_written_into_a_folder_that_does_not_exist_yet(cluster: DevCluster, tmp_path: Path) -> None:
    """`demo --keep-running` on a fresh clone writes .cache/demo-kubeconfig before .cache exists."""
    written = cluster.write_kubeconfig(tmp_path / ".cache" / "demo-kubeconfig")
    assert yaml.safe_load(written.read_text())["clusters"][0]["cluster"]["server"] == cluster.url


async def test_server_dry_run_admits_and_answers_without_storing(
    cluster: DevCluster, kubectl_binary: Path, tmp_path: Path,
) -> None:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    before = await cluster.apply(integration("a", "ns"))
    manifest = integration("a", "ns", schedule="0 3 * * *")
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(manifest))
    code, out, err = await kubectl(kubectl_binary, config, "diff", "-f", str(tmp_path / "a.yaml"))
    assert code == 1, err  # 1: differences found
    assert "+  schedule: 0 3 * * *" in out
    code, out, err = await kubectl(kubectl_binary, config, "apply", "--dry-run=server", "-f", str(tmp_path / "a.yaml"))
    assert code == 0 and "(server dry run)" in out, err
    code, _, err = await kubectl(kubectl_binary, config, "delete", "wmint", "a", "-n", "ns", "--dry-run=server")
    assert code == 0, err
    after = await cluster.get(API, "Integration", "ns", "a")
    assert after == before and cluster.api.revision == int(before["metadata"]["resourceVersion"])
    code, status = await http(cluster, "POST", INTEGRATIONS_PATH + "?dryRun=All",
                              json.dumps(integration("b", "ns", connectionRef={"name": "x"})),
                              **{"Content-Type": "application/json"})
    assert code == 201 and status["metadata"]["name"] == "b"
    assert [i["metadata"]["name"] for i in await cluster.list(API, "Integration", "ns")] == ["a"]


async def test_a_new_cluster_has_the_default_namespaces(cluster: DevCluster) -> None:
    names = [n["metadata"]["name"] for n in await cluster.list("v1", "Namespace")]
    assert names == ["default", "kube-system"]


async def test_json_patch_changes_the_object_but_not_its_status(cluster: DevCluster) -> None:
    assert cluster.client is not None
    await cluster.apply(integration("a", "ns"))
    await cluster.client.patch(cluster.resource(API, "Integration"), "ns", "a", {"status": {"activeRun": "r1"}},
                               status=True)
    json_patch = {"Content-Type": "application/json-patch+json"}
    code, patched = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/a", json.dumps([
        {"op": "test", "path": "/spec/connectionRef/name", "value": "lake"},
        {"op": "add", "path": "/spec/schedule", "value": "0 * * * *"},
        {"op": "replace", "path": "/status/activeRun", "value": "ignored"}]), **json_patch)
    assert code == 200 and patched["spec"]["schedule"] == "0 * * * *" and patched["status"] == {"activeRun": "r1"}
    code, status = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/a", json.dumps([
        {"op": "replace", "path": "/spec/connectionRef/name", "value": "other"}]), **json_patch)
    assert (code, status["reason"]) == (422, "Invalid") and "connectionRef cannot be changed" in status["message"]
    code, status = await http(cluster, "PATCH", INTEGRATIONS_PATH + "/a", json.dumps([
        {"op": "test", "path": "/spec/schedule", "value": "never"}]), **json_patch)
    assert (code, status["message"]) == (422, "testing value /spec/schedule failed")
    code, _ = await http(cluster, "POST", INTEGRATIONS_PATH, "[]", **json_patch)
    assert code == 400


async def test_unknown_fields_of_built_in_kinds_are_refused_or_warned_about(
    cluster: DevCluster, kubectl_binary: Path, tmp_path: Path,
) -> None:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "typo", "namespace": "default"},
              "stringdata": {"token": "x"}}
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump(secret))
    code, _, err = await kubectl(kubectl_binary, config, "apply", "-f", str(tmp_path / "secret.yaml"))
    assert code != 0 and 'Secret in version "v1" cannot be handled as a Secret: strict decoding error: ' \
        'unknown field "stringdata"' in err
    manifest = str(tmp_path / "secret.yaml")
    code, out, err = await kubectl(kubectl_binary, config, "apply", "--validate=warn", "-f", manifest)
    assert code == 0 and "secret/typo created" in out, err
    assert 'Warning: unknown field "stringdata"' in err
    assert "stringdata" not in await cluster.get("v1", "Secret", "default", "typo")
