"""Report history through the running operator: a replaced source is kept in status, an Event says how
to go back, and README's kubectl commands (real kubectl) really restore the spec.
Metrics of a deleted Integration go away."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from tests.operator.helpers import API, NS, OperatorHandle, eventually, integration, kubectl_runner
from tests.operator.test_operator import apply_connections, events_once_emitted, finished_runs, get
from walkme_dic_dev.cluster import Cluster


async def history_of_length(cluster: Cluster, name: str, length: int) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await get(cluster, "Integration", name)
        return obj if len((obj.get("status") or {}).get("identityHistory") or []) == length else None

    return await eventually(check)


async def test_replaced_source_is_kept_and_the_event_says_how_to_go_back(
    cluster: Cluster, operator: OperatorHandle, backends: dict, kubectl_binary: Path, tmp_path: Path,
) -> None:
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users"))
    first = await finished_runs(cluster, "users")
    assert first["status"]["sourceIdentity"]["identity"] == "file 'users.csv'"
    assert "identityHistory" not in first["status"]

    await cluster.patch(API, "Integration", NS, "users", {"spec": {"source": {"file": {"path": "hr/users-v2.csv"}}}})
    obj = await history_of_length(cluster, "users", 1)
    (entry,) = obj["status"]["identityHistory"]
    assert (entry["side"], entry["identity"], entry["replacedBy"]) == \
        ("source", "file 'users.csv'", "file 'hr/users-v2.csv'")
    assert entry["generation"] == obj["metadata"]["generation"] == 2
    events = await events_once_emitted(cluster, "users", "SourceReplaced")
    (event,) = [e for e in events if e["reason"] == "SourceReplaced"]
    assert event["type"] == "Normal"
    assert f"kubectl patch wmint users -n {NS} --type merge -p '{entry['restorePatch']}'" in event["message"]

    # README's commands with the real kubectl: list the history, then apply the newest restorePatch.
    kubectl = kubectl_runner(kubectl_binary, cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    listing = await kubectl("get", "wmint", "users", "-n", NS, "-o", "jsonpath={range .status.identityHistory[*]}"
                            "{.replacedAt}  {.side}: {.identity} -> {.replacedBy}{\"\\n\"}{end}")
    assert listing == f"{entry['replacedAt']}  source: file 'users.csv' -> file 'hr/users-v2.csv'\n"
    patch = await kubectl("get", "wmint", "users", "-n", NS, "-o", "jsonpath={.status.identityHistory[0].restorePatch}")
    assert json.loads(patch) == json.loads(entry["restorePatch"])
    await kubectl("patch", "wmint", "users", "-n", NS, "--type", "merge", "-p", patch)
    obj = await history_of_length(cluster, "users", 2)
    assert list(obj["spec"]["source"]) == ["file"], "the patch removes any other source block"
    assert obj["spec"]["source"]["file"]["path"] == "users.csv"  # the other settings keep the CRD's defaults
    assert obj["status"]["sourceIdentity"]["identity"] == "file 'users.csv'"
    assert [h["identity"] for h in obj["status"]["identityHistory"]] == ["file 'hr/users-v2.csv'", "file 'users.csv'"]


async def test_deleted_integration_leaves_no_series(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    labels = {"namespace": NS, "integration": "gone"}
    await apply_connections(cluster, backends)
    await cluster.apply(integration("gone"))
    await finished_runs(cluster, "gone")
    assert REGISTRY.get_sample_value("walkme_dic_integration_ready", labels) == 1
    await cluster.delete(API, "Integration", NS, "gone")

    async def forgotten() -> bool:
        return REGISTRY.get_sample_value("walkme_dic_integration_ready", labels) is None

    await eventually(forgotten)
    assert REGISTRY.get_sample_value("walkme_dic_runs_total", {**labels, "result": "Succeeded"}) is None
