"""Inbound change detection in status (issue 23), with the real operator against the real control plane: the
first run's full send and its reason, a later run's sent and unchanged counts beside the last full send's time,
and the full-resync annotation asking the next run for a full send until one has made it. The stand-in sync
answers what the engine would (the engine's own counting is tests/reliability/test_change_detection.py); what
is under test is what the operator asks each run and what it keeps of the answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.operator.helpers import NS, OperatorHandle, eventually, integration, plan_sync
from tests.operator.test_operator import REQUESTED_AT, apply_connections, finished_runs, get, jobs
from walkme_dic.api.run import REQUEST_ENV
from walkme_dic.jobs.naming import ANNOTATION_FULL_RESYNC
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

API = "integrations.walkme.io/v1alpha1"


def synced(rows: int, **counts: Any) -> dict[str, Any]:
    """The stand-in's result: ``rows`` read, the ``sent`` of them written."""
    return {"result": "Succeeded", "reason": "Synced", "rowsRead": rows, "rowsWritten": counts["sent"], **counts}


async def requests_sent(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The SyncRequest each run's Job was given, by run name."""
    found = {}
    for job in await jobs(cluster):
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        found[job["metadata"]["name"]] = json.loads(next(e["value"] for e in env if e["name"] == REQUEST_ENV))
    return found


async def annotate(cluster: Cluster, annotation: str, value: str) -> None:
    await cluster.patch(API, "Integration", NS, "users", {"metadata": {"annotations": {annotation: value}}})


async def test_status_shows_why_each_run_sent_what_it_sent(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, sync_plans: Path,
) -> None:
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", result=synced(3, sent=3, newUsers=3, fullSend="NoState",
                                                 message="full send (NoState: no state at s3://lake/… yet)"))
    await cluster.apply(integration("users"))
    first = (await finished_runs(cluster, "users"))["status"]
    assert (first["runs"][0]["fullSend"], first["runs"][0]["sent"]) == ("NoState", 3), first["runs"][0]
    assert "NoState" in first["runs"][0]["message"]
    assert first["lastFullSendTime"] and not first.get("fullSendRequested")

    plan_sync(sync_plans, "users", result=synced(3, sent=1, unchanged=2, usersKept=0))
    await annotate(cluster, REQUESTED_AT, "second")
    second = (await finished_runs(cluster, "users", count=2))["status"]
    run = second["runs"][0]
    assert (run["sent"], run["unchanged"], run["rowsWritten"], run.get("fullSend")) == (1, 2, 1, None), run
    assert second["lastFullSendTime"] == first["lastFullSendTime"], "a run that sent only the changes is no full send"

    # the annotation: the operator asks the next run for every user and says so until a run has sent them all
    plan_sync(sync_plans, "users", sleep=2, result=synced(3, sent=3, fullSend="Requested"))
    await annotate(cluster, ANNOTATION_FULL_RESYNC, "r1")

    async def asked() -> dict[str, Any] | None:
        status = (await get(cluster, "Integration", "users"))["status"]
        return status if status.get("fullSendRequested") and status.get("activeRun") else None

    running = await eventually(asked)
    request = (await requests_sent(cluster))[running["activeRun"]]
    assert request["state"]["fullSend"] is True and not request["state"].get("sourceFingerprint"), request["state"]
    assert all(not r["state"].get("fullSend") for name, r in (await requests_sent(cluster)).items()
               if name != running["activeRun"]), "only the run after the annotation is asked for a full send"
    third = (await finished_runs(cluster, "users", count=3))["status"]
    assert third["runs"][0]["fullSend"] == "Requested" and third["runs"][0]["sent"] == 3, third["runs"][0]
    assert third["lastFullSendTime"] > first["lastFullSendTime"] and not third.get("fullSendRequested"), third
    assert third["lastHandledFullResync"] == "r1"
