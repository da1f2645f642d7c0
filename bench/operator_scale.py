"""Operator at scale: N Integrations over M Connections in the dev cluster, the operator as a real process.

Measures the time until every Integration is Ready (each has run once; the dev kubelet runs a
shell stand-in for the sync so that 2,000 runs do not mean 2,000 Python start-ups), the API
requests the operator makes per Integration once everything is settled (target: no writes),
and the operator process's resident memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from walkme_dic.controllers.runtime import OPERATOR_USER_AGENT
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.fake_walkme import FakeWalkMe
from walkme_dic_dev.node_agent import NodeAgent

API = "integrations.walkme.io/v1alpha1"
RESULT = json.dumps({"result": "Succeeded", "reason": "Synced", "rowsRead": 1, "rowsWritten": 1})


def stand_in_sync(argv: list[str]) -> list[str]:
    """`walkme-dic sync … --result PATH` becomes a shell that writes a successful result there."""
    result_path = argv[argv.index("--result") + 1]
    return ["/bin/sh", "-c", 'printf "%s" "$0" > "$1"', RESULT, result_path]


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(integrations: int, connections: int, settle_seconds: float) -> dict[str, Any]:
    walkme = FakeWalkMe(clients={"c": "s"}, integration_tokens={"t": "uuid"})
    walkme.start()
    async with Cluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        log = Path(os.environ.get("BENCH_OPERATOR_LOG", os.devnull)).open("w")  # noqa: SIM115 - closed below
        operator = subprocess.Popen(
            [sys.executable, "-m", "walkme_dic", "operator", "--kubeconfig", str(kubeconfig), "--metrics-port", "0",
             "--liveness", "", "--resync", "30", "--log-format", "plain"],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ})
        try:
            async with Kubelet(cluster.client, command_resolver=stand_in_sync, relist_seconds=0.5):
                started = time.monotonic()
                await create_objects(cluster, walkme.url, integrations, connections)
                ready_after = await wait_ready(cluster, integrations)
                calls_before = len(cluster.api.calls)
                await asyncio.sleep(settle_seconds)
                settled = [c for c in cluster.api.calls[calls_before:] if c.user_agent.startswith(
                    ("kopf/", OPERATOR_USER_AGENT))]
                writes = [c for c in settled if c.verb in ("create", "patch", "update", "delete")]
                return {
                    "case": f"operator: {integrations:,} Integrations over {connections} Connections",
                    "seconds_until_all_ready": round(ready_after - started, 1),
                    "settle_window_s": settle_seconds,
                    "requests_per_integration_in_window": round(len(settled) / integrations, 3),
                    "writes_in_window": len(writes),
                    "operator_rss_mb": round(rss_mb(operator.pid, "VmRSS"), 1),
                    "operator_peak_rss_mb": round(rss_mb(operator.pid, "VmHWM"), 1),
                }
        finally:
            operator.terminate()
            operator.wait(30)
            log.close()
            walkme.stop()


async def create_objects(cluster: Cluster, walkme_url: str, integrations: int, connections: int) -> None:
    namespace = "scale"
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "w", "namespace": namespace},
                         "stringData": {"clientId": "c", "clientSecret": "s"}})
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": namespace},
                         "stringData": {"token": "t"}})
    for index in range(connections):
        await cluster.apply({"apiVersion": API, "kind": "Connection",
                             "metadata": {"name": f"walkme-{index}", "namespace": namespace},
                             "spec": {"walkme": {"apiUrl": walkme_url, "auth": {"secretRef": {"name": "w"}}},
                                      "probeInterval": "1h"}})
    for index in range(integrations):
        connection = f"walkme-{index % connections}"
        await cluster.apply({"apiVersion": API, "kind": "Integration",
                             "metadata": {"name": f"export-{index}", "namespace": namespace},
                             "spec": {"direction": "Outbound", "connectionRef": {"name": "lake"},
                                      "walkmeConnectionRef": {"name": connection},
                                      "source": {"walkme": {"dataset": "users"}},
                                      "destination": {"file": {"path": "x.csv"}},
                                      "mapping": {"key": {"source": "userId", "destination": "id"}},
                                      "schedule": "0 3 * * *"}})
    await cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": namespace},
                         "stringData": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}})
    await cluster.apply({"apiVersion": API, "kind": "Connection", "metadata": {"name": "lake", "namespace": namespace},
                         "spec": {"s3": {"bucket": "scale-bucket", "region": "us-east-1",
                                         "endpointUrl": os.environ["BENCH_S3_URL"],
                                         "auth": {"secretRef": {"name": "a"}}}}})


async def wait_ready(cluster: Cluster, integrations: int, timeout: float = 1800) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = await cluster.list(API, "Integration", "scale")
        ready = sum(1 for i in items for c in (i.get("status") or {}).get("conditions", [])
                    if c["type"] == "Ready" and c["status"] == "True")
        if ready == integrations:
            return time.monotonic()
        await asyncio.sleep(2)
    raise SystemExit(f"not all {integrations} Integrations became Ready within {timeout}s")
