"""A real Prometheus (Debian's `prometheus`) scrapes the operator on loopback and evaluates the chart's alerts.

Prometheus runs with its own temporary storage on a free port, scraping the operator's /metrics every
second and loading the rules `helm template` renders from the chart. A failed run must make
WalkmeDicRunFailed's expression true and the alert fire, naming the Integration; a succeeding one
must not. The metric names the rules and the dashboard use must all be in the live scrape.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.servers import free_port
from tests.operator.helpers import OperatorHandle, eventually, integration, plan_sync
from tests.operator.test_operator import finished_runs
from tests.unit.test_helm_chart import RELEASE, of_kind, render
from tests.unit.test_monitoring import OUR_METRIC, alerts, dashboard_queries, dashboard_variable_metrics
from walkme_dic_dev.cluster import Cluster

JOB = f"{RELEASE}-walkme-dic-metrics"  # the job name the chart's ServiceMonitor gives the operator's target


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        return (await asyncio.to_thread(self.get, "/api/v1/query", query=expr))["result"]


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def rules(helm_binary: Path, tmp_path: Path) -> dict[str, Any]:
    (rule,) = of_kind(render(helm_binary, tmp_path, {"metrics": {"prometheusRule": {"enabled": True}}}),
                      "PrometheusRule")
    return rule


@pytest.fixture
def prometheus(prometheus_binary: Path, tmp_path: Path, metrics_port: int, rules: dict[str, Any],
               ) -> Iterator[Prometheus]:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules["spec"], sort_keys=False))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [str(prometheus_binary), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server, process, tmp_path / "prometheus.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(server: Prometheus, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"prometheus not ready after 30s:\n{log.read_text()}")


@pytest.fixture
async def scraped_operator(cluster: Cluster, node: object, metrics_port: int) -> AsyncIterator[OperatorHandle]:
    """The real operator serving /metrics on 127.0.0.1:<metrics_port>, the target Prometheus scrapes."""
    handle = OperatorHandle(cluster, metrics_port=metrics_port)
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()


async def test_failed_run_makes_the_run_failed_alert_fire_in_a_real_prometheus(
    cluster: Cluster, scraped_operator: OperatorHandle, prometheus: Prometheus, backends: dict,
    sync_plans: Path, rules: dict[str, Any],
) -> None:
    (run_failed,) = [a for a in alerts(rules) if a["alert"] == "WalkmeDicRunFailed"]
    # Its own namespace: earlier operator tests in this process leave series in the shared registry.
    ns = f"prom-{uuid.uuid4().hex[:6]}"

    async def ours(expr: str) -> list[dict[str, Any]]:
        return [s for s in await prometheus.query(expr) if s["metric"].get("namespace") == ns]

    await eventually(lambda: prometheus.query(f'up{{job="{JOB}"}} == 1'), timeout=30)
    for obj in backends["manifests"]:
        await cluster.apply({**obj, "metadata": {**obj["metadata"], "namespace": ns}})
    plan_sync(sync_plans, "users", result={"result": "Failed", "reason": "SourceNotFound",
                                           "message": "s3://lake/dic/users.csv does not exist"})
    plan_sync(sync_plans, "orders", result={"result": "Succeeded", "reason": "Synced", "rowsRead": 5,
                                            "rowsWritten": 5})
    await cluster.apply(integration("orders", namespace=ns, schedule="0 3 * * *", maxRejectedRows=10,
                                    maxRejectedPercent=5))
    await finished_runs(cluster, "orders", namespace=ns)

    # The succeeding Integration is scraped, and the expression says nothing about it.
    await eventually(lambda: prometheus.query(
        f'walkme_dic_integration_last_run_failed{{namespace="{ns}", integration="orders"}} == 0'), timeout=30)
    assert await ours(run_failed["expr"]) == []

    await cluster.apply(integration("users", namespace=ns))
    obj = await finished_runs(cluster, "users", namespace=ns)
    assert obj["status"]["runs"][0]["result"] == "Failed"

    (sample,) = await eventually(lambda: ours(run_failed["expr"]), timeout=30)
    assert sample["metric"] == {"namespace": ns, "integration": "users"}
    firing = await eventually(lambda: ours('ALERTS{alertname="WalkmeDicRunFailed", alertstate="firing"}'),
                              timeout=30)
    assert [a["metric"]["integration"] for a in firing] == ["users"]
    described = (await asyncio.to_thread(prometheus.get, "/api/v1/alerts"))["alerts"]
    (alert,) = [a for a in described if a["labels"]["alertname"] == "WalkmeDicRunFailed"
                and a["labels"].get("namespace") == ns]
    assert f"kubectl describe wmint users -n {ns}" in alert["annotations"]["description"]

    # Every metric the rules and the dashboard name is in the live scrape.
    live = set(await asyncio.to_thread(prometheus.get, "/api/v1/label/__name__/values"))
    used = {m for a in alerts(rules) for m in OUR_METRIC.findall(a["expr"])}
    used |= {m for q in dashboard_queries() for m in OUR_METRIC.findall(q)} | dashboard_variable_metrics()
    assert used - live == set(), f"named by rules or dashboard but not scraped: {sorted(used - live)}"
