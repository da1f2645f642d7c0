"""`helm install charts/walkme-dic` into the real control plane, the operator running in-cluster.

The node agent runs the Deployment's two Pods (this checkout's `walkme-dic operator`, as the chart's
ServiceAccount with its projected token, finding the apiserver through KUBERNETES_SERVICE_HOST/PORT)
and the sync Jobs' Pods (the real `walkme-dic sync`). Each Pod has its own loopback address as its
pod IP, which the chart's listeners bind (POD_IP from the downward API), so the two replicas do not
collide on the node's one network. The release namespace and the tenant namespace are labelled
`pod-security.kubernetes.io/enforce: restricted`: the real PodSecurity admission judges every Pod.

One release serves the module (the per-test `cluster` fixture would delete its namespace); the tests
run in file order and the last one uninstalls it. tests/e2e/test_rbac.py installs its own with
`installed()` and reads what the operator did in the apiserver's audit log (`Audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.e2e.test_flows import inbound, put
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.cluster import start_node
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import NS, eventually, kubectl_runner
from tests.operator.test_operator import apply_connections, finished_runs
from walkme_dic.controllers.runtime import OPERATOR_USER_AGENT
from walkme_dic.kube import ApiError
from walkme_dic_dev.cluster import CRDS, RESTRICTED, Cluster, load_crds
from walkme_dic_dev.controlplane import ControlPlane
from walkme_dic_dev.egress import loopback_values
from walkme_dic_dev.node_agent import POD_ADDRESSES, NodeAgent

CHART = Path(__file__).resolve().parents[2] / "charts" / "walkme-dic"
RELEASE = "walkme-dic"  # the release, its namespace and the chart's full name (ServiceAccount, roles, Deployment)
OPERATOR_USER = f"system:serviceaccount:{RELEASE}:{RELEASE}"
LEASE = "walkme-dic-operator"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"
OPERATOR_AGENTS = ("kopf/", OPERATOR_USER_AGENT)
# The chart's defaults but for test timings: a quicker resync and readiness, plain log lines.
TEST_VALUES = {"operator": {"resync": 2, "logFormat": "plain"},
               "readinessProbe": {"initialDelaySeconds": 0, "periodSeconds": 1}, "egress": loopback_values()}
# What the default policy lets every authenticated user do with resources: review itself, read the cluster's
# public trust bundles. A ServiceAccount that nothing is bound to can do this and no more.
EVERYONE_MAY = {"selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
                "selfsubjectrulesreviews.authorization.k8s.io", "clustertrustbundles.certificates.k8s.io"}


@dataclass
class Audit:
    """The apiserver's audit log (Metadata level, JSON lines) from a mark on."""

    path: Path
    start: int = 0

    def mark(self) -> None:
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def events(self, username: str | None) -> list[dict[str, Any]]:
        """``username``'s requests since the mark (None: those that failed to authenticate), one event per
        request (its last stage)."""
        with self.path.open("rb") as log:
            log.seek(self.start)
            lines = log.read().splitlines()
        requests: dict[str, dict[str, Any]] = {}
        for line in lines:
            with contextlib.suppress(ValueError):  # a line the apiserver is still writing
                event = json.loads(line)
                if event["user"].get("username") == username:
                    requests[event["auditID"]] = event
        return list(requests.values())


def permission(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of a resource request; None for /api, /apis, /version…"""
    ref = event.get("objectRef")
    if ref is None:
        return None
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, event["verb"]


def granted(objects: list[dict[str, Any]], kind: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for role in objects if role["kind"] == kind for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}


@dataclass
class Release:
    """The chart installed by the real helm, with the admin's client, the node agent and the audit log."""

    admin: Cluster
    node: NodeAgent
    helm_binary: Path
    workdir: Path
    values: dict[str, Any] = field(default_factory=lambda: TEST_VALUES)
    installed: bool = False
    install_started: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __post_init__(self) -> None:
        self.kubeconfig = self.admin.write_kubeconfig(self.workdir / "admin.kubeconfig")
        self.values_file = self.workdir / "values.yaml"
        self.values_file.write_text(yaml.safe_dump(self.values))
        self.audit = Audit(self.admin.control_plane.audit_log)

    async def helm(self, *args: str) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               **{f"HELM_{part}_HOME": str(self.workdir / part.lower()) for part in ("CACHE", "CONFIG", "DATA")}}
        process = await asyncio.create_subprocess_exec(str(self.helm_binary), *args, env=env,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, f"helm {' '.join(args)} failed ({process.returncode}):\n{err.decode()}"
        return out.decode()

    async def install(self) -> str:
        self.install_started = datetime.now(UTC).replace(microsecond=0)
        out = await self.helm("install", RELEASE, str(CHART), "--namespace", RELEASE, "--values",
                              str(self.values_file), "--wait=watcher", "--timeout", "240s")
        self.installed = True
        return out

    async def uninstall(self) -> str:
        out = await self.helm("uninstall", RELEASE, "--namespace", RELEASE, "--wait=watcher", "--timeout", "120s")
        self.installed = False
        return out

    async def rendered(self) -> list[dict[str, Any]]:
        """What `helm template` makes of the chart with this release's values."""
        out = await self.helm("template", RELEASE, str(CHART), "--namespace", RELEASE, "--values",
                              str(self.values_file))
        return [doc for doc in yaml.safe_load_all(out) if doc]

    async def pods(self) -> list[dict[str, Any]]:
        """The operator's Pods that are not being deleted."""
        return [p for p in await self.admin.list("v1", "Pod", RELEASE, SELECTOR)
                if not p["metadata"].get("deletionTimestamp")]

    async def leader(self) -> str:
        """The name of the Pod whose operator holds the Lease ("" when nobody does)."""
        try:
            lease = await self.admin.get("coordination.k8s.io/v1", "Lease", RELEASE, LEASE)
        except ApiError as error:
            if error.status == 404:
                return ""
            raise
        return (lease["spec"].get("holderIdentity") or "").rsplit("_", 1)[0]

    async def delete_leader(self) -> tuple[str, str]:
        """Delete the leader's Pod once the Deployment is ready; (its name, the next holder's) once another Pod
        holds the Lease — the standby, or the ReplicaSet's new Pod if that one looks first."""
        await self.ready()
        leader = await self.leader()
        await self.admin.delete("v1", "Pod", RELEASE, leader)

        async def successor() -> str:
            holder = await self.leader()
            return holder if holder not in ("", leader) else ""

        return leader, await eventually(successor, timeout=60)

    async def ready(self) -> list[dict[str, Any]]:
        """Once the Deployment has all its replicas ready and one holds the Lease: its Pods."""
        async def check() -> list[dict[str, Any]] | None:
            deployment = await self.admin.get("apps/v1", "Deployment", RELEASE, RELEASE)
            pods = await self.pods()
            wanted = deployment["spec"]["replicas"]
            ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p.get("status", {}).get("conditions") or [])]
            leader = await self.leader()
            healthy = (deployment.get("status", {}).get("readyReplicas") == wanted == len(ready) == len(pods)
                       and leader in {p["metadata"]["name"] for p in pods})
            return pods if healthy else None

        return await eventually(check, timeout=90)


@contextlib.asynccontextmanager
async def installed(control_plane: ControlPlane, helm_binary: Path, workdir: Path,
                    fresh_crds: bool = False) -> AsyncIterator[Release]:
    """The chart installed (`--wait`) in a restricted namespace, the node agent running its Pods; uninstalled
    after. ``fresh_crds``: the CRDs are deleted first, so that helm creates them (and put back if it fails)."""
    async with Cluster(control_plane) as admin:
        node = await start_node(control_plane, workdir / "node", extra_env={"AWS_EC2_METADATA_DISABLED": "true"})
        release = Release(admin, node, helm_binary, workdir)
        try:
            if fresh_crds:
                await delete_crds(admin)
            await admin.ensure_namespace(RELEASE)
            release.audit.mark()
            await release.install()
            yield release
        finally:
            try:
                if release.installed:
                    await release.uninstall()
            finally:
                await node.stop()
                if fresh_crds:
                    await admin.install_crds()  # as the session found them, whatever happened here
                await admin.reset()


async def delete_crds(admin: Cluster) -> None:
    names = [crd["metadata"]["name"] for crd in load_crds()]
    for name in names:
        with contextlib.suppress(ApiError):
            await admin.client.delete(CRDS, "", name)

    async def gone() -> bool:
        listed = (await admin.client.request("GET", CRDS.path()))["items"]
        return not {crd["metadata"]["name"] for crd in listed} & set(names)

    await eventually(gone, timeout=60)


@pytest.fixture(scope="module")
async def release(control_plane: ControlPlane, helm_binary: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Release]:
    async with installed(control_plane, helm_binary, tmp_path_factory.mktemp("helm"), fresh_crds=True) as chart:
        yield chart


def rfc3339(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def test_helm_install_creates_every_object_of_the_chart(release: Release) -> None:
    admin = release.admin
    for crd in load_crds(CHART / "crds"):
        stored = await admin.client.get(CRDS, "", crd["metadata"]["name"])
        assert rfc3339(stored["metadata"]["creationTimestamp"]) >= release.install_started, "helm made it"
    rendered = await release.rendered()
    kinds = sorted(obj["kind"] for obj in rendered)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "Role",
                     "RoleBinding", "Service", "ServiceAccount"]
    for obj in rendered:
        namespace = obj["metadata"].get("namespace", "")
        stored = await admin.get(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert stored["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    pods = await release.ready()
    deployment = await admin.get("apps/v1", "Deployment", RELEASE, RELEASE)
    assert (deployment["status"]["readyReplicas"], deployment["status"]["availableReplicas"]) == (2, 2)
    budget = await admin.get("policy/v1", "PodDisruptionBudget", RELEASE, RELEASE)
    assert (budget["status"]["currentHealthy"], budget["status"]["disruptionsAllowed"]) == (2, 1)
    # The Service selects both operator Pods. (Its EndpointSlice stays empty here: the apiserver refuses
    # loopback addresses in endpoints, and the node agent's pod IPs are 127.0.1.N.)
    service = await admin.get("v1", "Service", RELEASE, f"{RELEASE}-metrics")
    selector = ",".join(f"{k}={v}" for k, v in service["spec"]["selector"].items())
    assert {p["metadata"]["name"] for p in await admin.list("v1", "Pod", RELEASE, selector)} == {
        p["metadata"]["name"] for p in pods}
    namespace = await admin.get("v1", "Namespace", "", RELEASE)
    assert RESTRICTED.items() <= namespace["metadata"]["labels"].items()
    assert "STATUS: deployed" in await release.helm("status", RELEASE, "--namespace", RELEASE)


async def test_the_operator_runs_in_cluster_as_the_charts_service_account(release: Release) -> None:
    pods = {p["metadata"]["name"]: p for p in await release.ready()}
    for pod in pods.values():
        assert pod["spec"]["serviceAccountName"] == RELEASE
        (container,) = pod["spec"]["containers"]
        token_volume = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == TOKEN_MOUNT)
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == token_volume]
        assert any("serviceAccountToken" in source for source in volume["projected"]["sources"])
        assert pod["status"]["hostIP"] == "127.0.0.1" and pod["status"]["podIP"] in POD_ADDRESSES
    assert len({p["status"]["podIP"] for p in pods.values()}) == 2, "each replica has its own pod IP"

    # Every request of the ServiceAccount carries the pod its projected token is bound to.
    requests = release.audit.events(OPERATOR_USER)
    assert {e["user"]["extra"][POD_NAME_CLAIM][0] for e in requests} >= set(pods)
    leader = await release.leader()
    kopf = {e["user"]["extra"][POD_NAME_CLAIM][0] for e in requests if e["userAgent"].startswith("kopf/")}
    assert leader in kopf and kopf <= set(pods) | {""}, "kopf ran in the leader's Pod, with its token"

    # The listeners bind each Pod's own IP: the leader serves metrics there, the standby only /healthz.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for name, pod in pods.items():
            address = pod["status"]["podIP"]
            async with http.get(f"http://{address}:8080/healthz") as answer:
                assert answer.status == 200
            if name == leader:
                async with http.get(f"http://{address}:8000/metrics") as answer:
                    assert "walkme_dic_" in await answer.text()
            else:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await http.get(f"http://{address}:8000/metrics")


async def test_deleting_the_leader_pod_hands_the_lease_to_the_other_replica(release: Release) -> None:
    before = {p["metadata"]["name"] for p in await release.ready()}
    (log,) = [c.log for run in release.node.pods.values() if run.pod["metadata"]["name"] == await release.leader()
              for c in run.containers.values()]  # the file outlives the Pod
    release.audit.mark()
    deleted_at = time.monotonic()
    leader, successor = await release.delete_leader()
    hand_over = time.monotonic() - deleted_at
    print(f"hand-over: {successor} held the Lease {hand_over:.1f}s after {leader} was deleted")
    assert re.search(rf"leader election: {leader}_\d+ released Lease", log.read_text()), \
        "the stopping leader released the Lease (the other did not wait out its lease duration)"
    # The Pod stays until its containers have stopped, so the stopping operator's token is good to the end.
    assert not [e["requestURI"] for e in release.audit.events(None) if e["userAgent"].startswith(OPERATOR_AGENTS)]
    after = {p["metadata"]["name"] for p in await release.ready()}
    assert leader not in after and len(after) == 2 and len(after & before) == 1, "the ReplicaSet replaced it"
    assert successor in after
    assert f"leader election: {successor}_" in release.node.logs(successor)


async def test_an_inbound_flow_in_a_restricted_namespace_runs_with_the_operator_in_cluster(
    release: Release, backends: dict, walkme: FakeWalkMe, moto_server: str, kubectl_binary: Path,
) -> None:
    admin = release.admin
    await release.ready()
    release.audit.mark()
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(admin, backends)
    await admin.apply(inbound())
    obj = await finished_runs(admin, "hr")
    assert obj["status"]["runs"][0]["result"] == "Succeeded"
    assert set(walkme.users(WALKME_TOKEN)) == {"u1"}
    tenant = await admin.get("v1", "Namespace", "", NS)
    assert RESTRICTED.items() <= tenant["metadata"]["labels"].items()
    made = {(e["verb"], e["objectRef"]["resource"]) for e in release.audit.events(OPERATOR_USER)
            if e.get("objectRef", {}).get("namespace") == NS and e["responseStatus"]["code"] < 300}
    assert ("create", "jobs") in made, "the in-cluster operator, as the chart's ServiceAccount, made the Job"

    # The sync Job's Pod has no token, and its ServiceAccount could do nothing with one.
    (pod,) = await admin.list("v1", "Pod", NS, f"job-name={obj['status']['runs'][0]['name']}")
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert not [v for v in spec["volumes"] if "serviceAccountToken" in str(v.get("projected"))]
    assert not [m for c in spec["containers"] for m in c.get("volumeMounts") or [] if m["mountPath"] == TOKEN_MOUNT]
    account = f"system:serviceaccount:{NS}:{spec['serviceAccountName']}"
    kubectl = kubectl_runner(kubectl_binary, release.kubeconfig)
    listing = await kubectl("auth", "can-i", "--list", f"--as={account}", "--namespace", NS)
    resources = {line.split()[0] for line in listing.splitlines()[1:] if line and not line.startswith(" ")}
    assert resources == EVERYONE_MAY, f"kubectl auth can-i --list --as={account}:\n{listing}"
    unbound = await kubectl("auth", "can-i", "--list", f"--as=system:serviceaccount:{NS}:nothing-bound", "-n", NS)
    assert listing == unbound, f"{account} may do more than a ServiceAccount nothing is bound to:\n{listing}"


async def test_helm_uninstall_removes_the_release_and_keeps_the_crds(release: Release) -> None:
    admin = release.admin
    rendered = await release.rendered()
    await release.uninstall()
    for obj in rendered:
        with pytest.raises(ApiError) as missing:
            await admin.get(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", ""),
                            obj["metadata"]["name"])
        assert missing.value.status == 404, f"{obj['kind']}/{obj['metadata']['name']} outlived helm uninstall"

    async def no_pods() -> bool:
        return not await admin.list("v1", "Pod", RELEASE, SELECTOR)

    await eventually(no_pods, timeout=60)
    for crd in load_crds(CHART / "crds"):
        await admin.client.get(CRDS, "", crd["metadata"]["name"])  # helm never deletes CRDs
