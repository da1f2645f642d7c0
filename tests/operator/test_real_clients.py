"""Clients nobody here wrote, against the real control plane while the operator works: the `kubernetes`
package's Watch and typed CoreV1Api, and kubectl's `get -w`, `get -o yaml | apply -f -` (a List) and
`auth can-i`. Each broke on the emulator this project used to test against (issue 27)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from tests.operator.helpers import NS, OperatorHandle, condition, eventually, integration
from tests.operator.test_operator import apply_connections, finished_runs
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

GROUP, VERSION = "integrations.walkme.io", "v1alpha1"


def api_client(cluster: Cluster, tmp_path: Path) -> k8s.ApiClient:
    return k8s_config.new_client_from_config(str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))


def watched_until_ready(api: k8s.ApiClient, name: str) -> list[tuple[str, dict[str, Any]]]:
    """Events of Integration ``name`` from Watch().stream until one shows it Ready=True."""
    seen: list[tuple[str, dict[str, Any]]] = []
    stream = watch.Watch()
    for event in stream.stream(k8s.CustomObjectsApi(api).list_namespaced_custom_object, GROUP, VERSION, NS,
                               "integrations", field_selector=f"metadata.name={name}", timeout_seconds=60):
        seen.append((event["type"], event["object"]))
        if condition(event["object"], "Ready").get("status") == "True":
            stream.stop()
    return seen


async def test_python_watch_streams_the_operators_status_writes(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, tmp_path: Path,
) -> None:
    api = api_client(cluster, tmp_path)
    await apply_connections(cluster, backends)
    watching = asyncio.create_task(asyncio.to_thread(watched_until_ready, api, "watched"))
    await asyncio.sleep(0.5)  # the watch is open before the object exists
    await cluster.apply(integration("watched"))
    seen = await asyncio.wait_for(watching, 90)
    assert seen[0][0] == "ADDED" and "status" not in seen[0][1]
    assert {kind for kind, _ in seen[1:]} == {"MODIFIED"}
    versions = [int(obj["metadata"]["resourceVersion"]) for _, obj in seen]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


async def test_core_api_reads_the_pods_the_node_agent_reports(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, tmp_path: Path,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("typed"))
    await finished_runs(cluster, "typed")
    pods = (await asyncio.to_thread(k8s.CoreV1Api(api_client(cluster, tmp_path)).list_namespaced_pod, NS)).items
    [pod] = pods
    [status] = pod.status.container_statuses
    assert status.image.startswith("ghcr.io/walkme-dic/walkme-dic")
    assert status.state.terminated.exit_code == 0 and status.state.terminated.reason == "Completed"
    assert pod.status.phase == "Succeeded" and pod.spec.node_name == node.name


def kubectl(kubectl_binary: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(kubectl_binary), *args], input=stdin, capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_kubectl_get_watch_keeps_the_printer_columns(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, kubectl_binary: Path,
    tmp_path: Path,
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    await apply_connections(cluster, backends)
    watcher = await asyncio.create_subprocess_exec(
        str(kubectl_binary), "get", "wmint", "-n", NS, "--watch", "--request-timeout=0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    assert watcher.stdout is not None
    try:
        await cluster.apply(integration("tour"))
        await finished_runs(cluster, "tour")
        lines: list[list[str]] = []

        async def a_row_shows_the_run() -> bool:
            line = await asyncio.wait_for(watcher.stdout.readline(), 30)
            lines.append(line.decode().split())
            return len(lines) > 1 and "True" in lines[-1]  # the READY column of the operator's last write

        await eventually(a_row_shows_the_run, timeout=60, interval=0)
    finally:
        watcher.kill()
        await watcher.wait()
    assert lines[0][:3] == ["NAME", "DIRECTION", "SCHEDULE"], lines[0]
    assert all(row[0] == "tour" and row[1] == "Inbound" for row in lines[1:]), lines


async def test_kubectl_round_trips_a_list_and_answers_can_i(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, kubectl_binary: Path,
    tmp_path: Path,
) -> None:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    await apply_connections(cluster, backends)
    await cluster.apply(integration("listed"))
    await finished_runs(cluster, "listed")
    listed = kubectl(kubectl_binary, kubeconfig, "get", "wmint,wmconn", "-n", NS, "-o", "yaml")
    applied = kubectl(kubectl_binary, kubeconfig, "apply", "-f", "-", stdin=listed)
    outcome = dict(line.rsplit(" ", 1) for line in applied.splitlines())
    assert set(outcome) == {"connection.integrations.walkme.io/lake", "connection.integrations.walkme.io/walkme",
                            "integration.integrations.walkme.io/listed"}, applied
    assert set(outcome.values()) <= {"configured", "unchanged"}, applied
    after = await cluster.get("integrations.walkme.io/v1alpha1", "Integration", NS, "listed")
    assert condition(after, "Ready")["status"] == "True", "a round trip changes nothing the operator reads"
    tenant = f"--as=system:serviceaccount:{NS}:default"
    denied = subprocess.run([str(kubectl_binary), "auth", "can-i", "create", "integrations.integrations.walkme.io",
                             "-n", NS, tenant], capture_output=True, text=True, check=False,
                            env={"KUBECONFIG": str(kubeconfig)})
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    assert kubectl(kubectl_binary, kubeconfig, "auth", "can-i", "create", "integrations.integrations.walkme.io",
                   "-n", NS).strip() == "yes"
