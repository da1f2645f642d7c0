"""The chart's alerts and Grafana dashboard, checked with the real tools.

The rules tested are the ones `helm template` renders from charts/walkme-dic (not a copy):
`promtool check rules` lints them, `promtool test rules` runs tests/unit/promtool/alerts_test.yaml
(each alert firing and not firing, annotations word for word). Every metric name the rules and the
dashboard use must be one the operator exports (walkme_dic.metrics, the registry it serves);
tests/operator/test_prometheus.py checks the same names against a live scrape.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import walkme_dic.metrics  # noqa: F401  (registers the operator's metrics)
from tests.unit.test_helm_chart import CHART, NAMESPACE, RELEASE, of_kind, render

PROMTOOL_TESTS = Path(__file__).with_name("promtool") / "alerts_test.yaml"
DASHBOARD = CHART / "dashboards" / "walkme-dic.json"
OUR_METRIC = re.compile(r"\bwalkme_dic_[a-z_]+\b")
# Grafana variables in dashboard queries, replaced by what Grafana would send, so promtool can parse them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}
PER_OBJECT_LABELS = {"integration", "connection"}


def exported_metric_names() -> set[str]:
    """Every sample name the operator's registry serves for our metrics (counters: _total, histograms: _bucket...)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for family in REGISTRY.collect() if family.name.startswith("walkme_dic_")
            for suffix in suffixes[family.type]}


def rendered_rules(helm_binary: Path, tmp_path: Path) -> dict[str, Any]:
    (rule,) = of_kind(render(helm_binary, tmp_path, {"metrics": {"prometheusRule": {"enabled": True}}}),
                      "PrometheusRule")
    return rule


def alerts(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def promtool(promtool_binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool_binary), *args], capture_output=True, text=True, timeout=120, check=False)


def write_rules(tmp_path: Path, groups: list[dict[str, Any]]) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


# -- alerts ---------------------------------------------------------------------------------------


def test_prometheus_rule_only_when_enabled(helm_binary: Path, tmp_path: Path) -> None:
    assert of_kind(render(helm_binary, tmp_path, {}), "PrometheusRule") == []
    assert of_kind(render(helm_binary, tmp_path, {"metrics": {"enabled": False, "prometheusRule": {"enabled": True}}}),
                   "PrometheusRule") == []
    rule = rendered_rules(helm_binary, tmp_path)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE


def test_rendered_rules_pass_promtool_check(helm_binary: Path, promtool_binary: Path, tmp_path: Path) -> None:
    path = write_rules(tmp_path, rendered_rules(helm_binary, tmp_path)["spec"]["groups"])
    done = promtool(promtool_binary, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_rendered_rules_pass_promtool_unit_tests(helm_binary: Path, promtool_binary: Path, tmp_path: Path) -> None:
    write_rules(tmp_path, rendered_rules(helm_binary, tmp_path)["spec"]["groups"])
    tests = tmp_path / PROMTOOL_TESTS.name
    tests.write_text(PROMTOOL_TESTS.read_text())
    done = promtool(promtool_binary, "test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_fail_when_an_alert_breaks(
    helm_binary: Path, promtool_binary: Path, tmp_path: Path,
) -> None:
    """The unit tests can fail: an alert whose threshold is off by the grace is caught."""
    groups = rendered_rules(helm_binary, tmp_path)["spec"]["groups"]
    for rule in groups[0]["rules"]:
        rule["expr"] = rule["expr"].replace("+ 1800", "+ 7200")
    write_rules(tmp_path, groups)
    tests = tmp_path / PROMTOOL_TESTS.name
    tests.write_text(PROMTOOL_TESTS.read_text())
    done = promtool(promtool_binary, "test", "rules", str(tests))
    assert done.returncode != 0 and "WalkmeDicIntegrationOverdue" in done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not(helm_binary: Path, tmp_path: Path) -> None:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    for alert in alerts(rendered_rules(helm_binary, tmp_path)):
        name = alert["alert"]
        assert any(c["alertname"] == name and c["exp_alerts"] for c in checks), f"{name}: no case where it fires"
        assert any(c["alertname"] == name and not c["exp_alerts"] for c in checks), f"{name}: no quiet case"


def test_every_alert_says_which_object_and_what_to_run(helm_binary: Path, tmp_path: Path) -> None:
    for alert in alerts(rendered_rules(helm_binary, tmp_path)):
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description"}, alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert "kubectl " in annotations["description"], alert["alert"]
        grouped_by = {label.strip() for group in re.findall(r"by \(([^)]*)\)", alert["expr"])
                      for label in group.split(",")}
        for label in PER_OBJECT_LABELS & grouped_by:  # a per-object alert names namespace and object
            for text in annotations.values():
                assert f"$labels.{label}" in text and "$labels.namespace" in text, (alert["alert"], text)


def test_rules_use_only_metrics_the_operator_exports(helm_binary: Path, tmp_path: Path) -> None:
    exported = exported_metric_names()
    for alert in alerts(rendered_rules(helm_binary, tmp_path)):
        used = set(OUR_METRIC.findall(alert["expr"]))
        assert used <= exported, f"{alert['alert']} uses {sorted(used - exported)}, not exported"


def test_operator_job_label_follows_the_release_or_the_override(helm_binary: Path, tmp_path: Path) -> None:
    default = rendered_rules(helm_binary, tmp_path)
    assert all(f'job="{RELEASE}-walkme-dic-metrics"' in a["expr"] for a in alerts(default))
    (custom,) = of_kind(render(helm_binary, tmp_path, {"metrics": {"prometheusRule": {
        "enabled": True, "operatorJob": "dic-operator", "labels": {"release": "kube-prometheus-stack"}}}}),
        "PrometheusRule")
    assert all('job="dic-operator"' in a["expr"] for a in alerts(custom))
    assert custom["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# -- the Grafana dashboard ------------------------------------------------------------------------


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return [_grafana_to_promql(e) for e in exprs]


def dashboard_variable_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return {match for q in queries for match in OUR_METRIC.findall(q)}


def _grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # $namespace, $integration, $job: all values


def test_dashboard_configmap_only_when_enabled_with_the_sidecar_label(helm_binary: Path, tmp_path: Path) -> None:
    assert not [c for c in of_kind(render(helm_binary, tmp_path, {}), "ConfigMap")
                if c["metadata"]["name"].endswith("-dashboard")]
    (configmap,) = of_kind(render(helm_binary, tmp_path, {"metrics": {"dashboard": {
        "enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "walkme-dic"}}}}), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "walkme-dic"}
    assert json.loads(configmap["data"]["walkme-dic.json"]) == json.loads(DASHBOARD.read_text())


def test_dashboard_has_the_panels_an_sre_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "walkme-dic"
    text = json.dumps(dashboard["panels"])
    for metric in ("walkme_dic_runs_total", "walkme_dic_rows_total", "walkme_dic_run_duration_seconds_bucket",
                   "walkme_dic_connection_ready", "walkme_dic_integration_next_schedule_timestamp_seconds",
                   "walkme_dic_integration_last_run_timestamp_seconds"):
        assert metric in text, f"no panel shows {metric}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_parse_with_promtool(promtool_binary: Path, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    rules = [{"record": f"walkme_dic_dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = write_rules(tmp_path, [{"name": "dashboard-queries", "rules": rules}])
    done = promtool(promtool_binary, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_uses_only_metrics_the_operator_exports() -> None:
    exported = exported_metric_names()
    used = {m for q in dashboard_queries() for m in OUR_METRIC.findall(q)} | dashboard_variable_metrics()
    assert used, "the dashboard queries none of our metrics"
    assert used <= exported, f"the dashboard uses {sorted(used - exported)}, which the operator does not export"


@pytest.mark.parametrize("typo", ["walkme_dic_runs", "walkme_dic_integration_last_succes_timestamp_seconds"])
def test_the_name_check_catches_a_misspelt_metric(typo: str) -> None:
    assert typo not in exported_metric_names()
