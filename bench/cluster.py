"""The real control plane for the benches that need a Kubernetes API, and the apiserver's own request counts.

`started_cluster` starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler
(walkme_dic_dev.controlplane) in a folder of its own and installs the CRDs. `operator_identity` makes
the operator's identity as the chart does: its ServiceAccount, bound to the ClusterRole that
`helm template` renders from charts/walkme-dic, signing in with a token from TokenRequest. So the
operator under measurement is held to its real RBAC and lands in the API Priority and Fairness
priority level of any service account (workload-low), as in a cluster.

Counting. `mark` notes the apiserver's ``apiserver_request_total`` (every request, by verb and
resource; /metrics) and the time; `requests_between` two marks gives the difference of those counters,
and the same requests by client from the apiserver's audit log (Metadata level: user, user agent,
verb, resource), each request counted in the phase in which the apiserver received it. The operator
is its ServiceAccount; kopf and our own client tell themselves apart by their user agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.controlplane import ControlPlane
from walkme_dic_dev.tools import ensure_binary

CHART = Path(__file__).resolve().parents[1] / "charts" / "walkme-dic"
OPERATOR_NAMESPACE = "walkme-dic"
RELEASE = "walkme-dic"
OPERATOR_CLIENT = "walkme-dic operator"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
TOKEN_SECONDS = 6 * 3600


@contextlib.asynccontextmanager
async def started_cluster(workdir: Path, controller_manager_qps: int | None = None) -> AsyncIterator[Cluster]:
    """A started control plane in ``workdir`` with the project's CRDs, and the admin's `Cluster` of it."""
    plane = ControlPlane(workdir / "control-plane", controller_manager_qps=controller_manager_qps)
    try:
        await asyncio.to_thread(plane.start)
        async with Cluster(plane) as cluster:
            await cluster.install_crds()
            yield cluster
    finally:
        await asyncio.to_thread(plane.stop)


@dataclass(frozen=True)
class OperatorIdentity:
    namespace: str
    service_account: str
    token: str
    kubeconfig: Path


async def operator_identity(cluster: Cluster, workdir: Path) -> OperatorIdentity:
    """The chart's ServiceAccount, ClusterRole and ClusterRoleBinding, and a kubeconfig with a token for it."""
    rendered = await asyncio.to_thread(subprocess.run, [
        str(ensure_binary("helm")), "template", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE],
        capture_output=True, text=True, check=True)
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    wanted = [d for d in documents if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")]
    for document in wanted:
        if document["kind"] == "ServiceAccount":
            document["metadata"]["namespace"] = OPERATOR_NAMESPACE
        await cluster.apply(document)
    (account,) = [d["metadata"]["name"] for d in wanted if d["kind"] == "ServiceAccount"]
    answer = await cluster.client.request(
        "POST", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": TOKEN_SECONDS}})
    token = answer["status"]["token"]
    kubeconfig = workdir / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": cluster.url,
                                                   "certificate-authority": str(cluster.control_plane.ca)}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": account,
                                                   "namespace": OPERATOR_NAMESPACE}}],
        "current-context": "bench"}))
    kubeconfig.chmod(0o600)
    return OperatorIdentity(OPERATOR_NAMESPACE, account, token, kubeconfig)


@dataclass(frozen=True)
class Mark:
    """The apiserver's request counters at one moment, and that moment."""

    at: datetime
    by_resource: Counter[str]


@dataclass(frozen=True)
class Requests:
    """The requests between two marks: ``by_resource`` (apiserver_request_total, every client),
    "VERB group/resource[/sub]"; ``by_client`` {client: {"verb group/resource[/sub]": n}} (audit log)."""

    by_resource: Counter[str]
    by_client: dict[str, Counter[str]]

    def operator(self) -> Counter[str]:
        return sum((n for client, n in self.by_client.items() if client.startswith(OPERATOR_CLIENT)), Counter())

    def operator_writes(self) -> int:
        return sum(n for key, n in self.operator().items() if key.split()[0] in WRITE_VERBS)

    def summary(self, top: int = 12) -> dict[str, Any]:
        clients = sorted(self.by_client.items(), key=lambda item: -sum(item[1].values()))
        return {"total": sum(self.by_resource.values()),
                "by_verb_and_resource": dict(self.by_resource.most_common(top)),
                "by_client": {name: sum(counts.values()) for name, counts in clients},
                "operator_by_verb_and_resource": dict(self.operator().most_common())}


def _request_counters(plane: ControlPlane) -> Counter[str]:
    """Blocking: apiserver_request_total from the apiserver's /metrics, "VERB group/resource[/sub]"."""
    counters: Counter[str] = Counter()
    for family in text_string_to_metric_families(plane.metrics()):
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                labels = sample.labels
                resource = "/".join(p for p in (labels.get("group"), labels.get("resource"),
                                                labels.get("subresource")) if p) or "(non-resource)"
                counters[f"{labels['verb']} {resource}"] += round(sample.value)
    return counters


async def mark(cluster: Cluster) -> Mark:
    at = datetime.now(UTC)
    return Mark(at, await asyncio.to_thread(_request_counters, cluster.control_plane))


def _client(event: dict[str, Any], operator_user: str) -> str:
    user = event["user"].get("username", "(unauthenticated)")
    if user != operator_user:
        return user
    return f"{OPERATOR_CLIENT} ({'kopf' if event.get('userAgent', '').startswith('kopf/') else 'walkme-dic'})"


def audited(audit_log: Path, operator_user: str, phases: list[tuple[Mark, Mark]]) -> list[dict[str, Counter[str]]]:
    """For each phase, {client: Counter("verb group/resource[/sub]")} of the requests received in it."""
    seen: set[str] = set()
    counts: list[dict[str, Counter[str]]] = [defaultdict(Counter) for _ in phases]
    with audit_log.open("rb") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:  # the last line, still being written
                continue
            if event["auditID"] in seen:  # a watch's ResponseStarted, then its ResponseComplete
                continue
            seen.add(event["auditID"])
            received = datetime.fromisoformat(event["requestReceivedTimestamp"])
            ref = event.get("objectRef")
            resource = "/".join(p for p in (ref.get("apiGroup"), ref.get("resource"), ref.get("subresource"))
                                if p) if ref else "(non-resource)"
            for index, (start, end) in enumerate(phases):
                if start.at <= received < end.at:
                    counts[index][_client(event, operator_user)][f"{event['verb']} {resource}"] += 1
    return [dict(phase) for phase in counts]


async def requests_between(cluster: Cluster, identity: OperatorIdentity,
                           phases: list[tuple[Mark, Mark]]) -> list[Requests]:
    """The requests of each (start, end) phase: apiserver_request_total's difference, and the audit log's."""
    user = f"system:serviceaccount:{identity.namespace}:{identity.service_account}"
    audit = await asyncio.to_thread(audited, cluster.control_plane.audit_log, user, phases)
    return [Requests(+(end.by_resource - start.by_resource), clients)
            for (start, end), clients in zip(phases, audit, strict=True)]
