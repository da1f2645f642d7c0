"""A daily Salesforce import through the operator: the watermark travels in status, full-resync resets it."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.e2e.test_flows import request_run, salesforce_connection
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.walkme import FakeWalkMe
from tests.operator.helpers import API, NS, OperatorHandle, integration
from tests.operator.test_operator import apply_connections, finished_runs
from walkme_dic_dev.cluster import Cluster

FULL_RESYNC = "integrations.walkme.io/full-resync"


async def test_daily_salesforce_import_reads_changes_and_full_resync_reads_all(
    cluster: Cluster, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe, salesforce: FakeSalesforce,
) -> None:
    salesforce.seed("Contact", [{"LastName": f"c{i}", "WalkMe_Id__c": f"c{i}", "Email": f"c{i}@acme.example",
                                 "SystemModstamp": f"2026-11-2{i}T08:00:00.000+0000"} for i in range(4)])
    await apply_connections(cluster, backends)
    for obj in salesforce_connection(salesforce):
        await cluster.apply(obj)
    await cluster.apply(integration(
        "daily", connectionRef={"name": "crm"},
        source={"salesforce": {"object": "Contact", "fields": ["WalkMe_Id__c", "Email"], "since": "lastRun"}},
        mapping={"key": {"source": "WalkMe_Id__c", "destination": "uuid"},
                 "fields": [{"source": "Email", "destination": "email"}]}))
    obj = await finished_runs(cluster, "daily")
    assert obj["status"]["runs"][0]["rowsRead"] == 4
    assert covered(obj["status"]["watermark"], salesforce), "the org's time at the run less the 5-minute lookback"

    await request_run(cluster, "daily", "second")
    obj = await finished_runs(cluster, "daily", count=2)
    assert obj["status"]["runs"][0]["rowsRead"] == 0, "nothing changed, nothing is read twice"

    await cluster.patch(API, "Integration", NS, "daily", {"metadata": {"annotations": {FULL_RESYNC: "1"}}})
    obj = await finished_runs(cluster, "daily", count=3)
    assert [r["rowsRead"] for r in obj["status"]["runs"]] == [4, 0, 4]
    assert obj["status"]["lastHandledFullResync"] == "1"
    assert covered(obj["status"]["watermark"], salesforce)


def covered(watermark: str, org: FakeSalesforce) -> bool:
    """A run's start by the org's clock less 5 minutes, for a run that started at most 3 minutes ago."""
    behind = org.store.now() - timedelta(minutes=5) - datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    return timedelta(0) <= behind < timedelta(minutes=3)
