"""A daily Salesforce import through the operator: the watermark travels in status, full-resync resets it."""

from __future__ import annotations

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
    assert obj["status"]["runs"][0]["rowsRead"] == 4 and obj["status"]["watermark"] == "2026-11-23T08:00:00.000Z"

    await request_run(cluster, "daily", "second")
    obj = await finished_runs(cluster, "daily", count=2)
    assert obj["status"]["runs"][0]["rowsRead"] == 1, "only the record on the watermark's second is read again"

    await cluster.patch(API, "Integration", NS, "daily", {"metadata": {"annotations": {FULL_RESYNC: "1"}}})
    obj = await finished_runs(cluster, "daily", count=3)
    assert [r["rowsRead"] for r in obj["status"]["runs"]] == [4, 1, 4]
    assert obj["status"]["lastHandledFullResync"] == "1"
    assert obj["status"]["watermark"] == "2026-11-23T08:00:00.000Z"
