"""The Helm chart's RBAC grants what the operator uses, and nothing the operator never does.

The dev cluster logs every request with its User-Agent; kopf says `kopf/…`, our client
`walkme-dic-operator`. A full flow (Connections probed, an Integration run, Events posted) is
compared with the ClusterRole `helm template` renders with default values.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import yaml

from tests.e2e.test_flows import inbound, put
from tests.fakes.walkme import FakeWalkMe
from tests.operator.helpers import OperatorHandle, Replicas, eventually
from tests.operator.test_operator import apply_connections, finished_runs
from tests.operator.test_standby import held_by
from walkme_dic.controllers.runtime import OPERATOR_USER_AGENT
from walkme_dic_dev.cluster import Cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "walkme-dic"


def granted(helm_binary: Path, kind: str = "ClusterRole", name_suffix: str = "") -> set[tuple[str, str, str]]:
    rendered = subprocess.run([str(helm_binary), "template", "dic", str(CHART)], capture_output=True, text=True,
                              check=True).stdout
    roles = [d for d in yaml.safe_load_all(rendered)
             if d and d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    return {(group, resource, verb) for role in roles for rule in role["rules"]
            for group in rule.get("apiGroups", []) for resource in rule.get("resources", [])
            for verb in rule.get("verbs", [])}


async def test_operator_uses_only_what_the_chart_grants_and_the_chart_grants_only_what_it_uses(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, moto_server: str,
    helm_binary: Path,
) -> None:
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(cluster, backends)
    await cluster.apply(inbound())
    await finished_runs(cluster, "hr")
    used = {(call.group, call.resource, call.verb) for call in cluster.api.calls
            if call.user_agent.startswith(("kopf/", OPERATOR_USER_AGENT))}
    rules = granted(helm_binary)
    assert used - rules == set(), "the operator called the API beyond its ClusterRole"
    unused = {rule for rule in rules if rule not in used}
    # Deleting Jobs happens only when runs leave the history; this flow keeps every run.
    allowed_unused = {("batch", "jobs", "delete")}
    assert unused <= allowed_unused, f"granted but never used in a full flow: {sorted(unused - allowed_unused)}"


async def test_leader_election_uses_exactly_what_its_role_grants(
    cluster: Cluster, node: object, replicas: Replicas, helm_binary: Path,
) -> None:
    """Take, renew, stand by, release and take over the Lease; compare with the chart's leader-election Role."""
    first = replicas.start()
    await eventually(lambda: held_by(cluster, first.pid))
    second = replicas.start()
    await asyncio.sleep(3)  # a renewal by the leader, a look by the standby
    first.terminate()
    await asyncio.to_thread(first.wait, 30)
    await eventually(lambda: held_by(cluster, second.pid))
    used = {(call.group, call.resource, call.verb) for call in cluster.api.calls
            if call.user_agent.startswith(OPERATOR_USER_AGENT) and "leader-election" in call.user_agent}
    assert used == granted(helm_binary, "Role", "-leader-election") == {
        ("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}
