"""Prometheus metrics of the operator (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNS = Counter("walkme_dic_runs_total", "Sync runs finished, by result.", ["namespace", "result"])
ROWS = Counter("walkme_dic_rows_total", "Rows handled by finished runs.", ["namespace", "kind"])
RUN_DURATION = Histogram(
    "walkme_dic_run_duration_seconds", "Wall time of finished runs.", ["namespace"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
RECONCILE_ERRORS = Counter("walkme_dic_reconcile_errors_total", "Reconciles that raised.", ["kind"])
JOBS_CREATED = Counter("walkme_dic_jobs_created_total", "Sync Jobs created.", ["namespace"])
PROBES = Counter("walkme_dic_connection_probes_total", "Connection probes, by outcome.", ["provider", "reason"])
READY = Gauge("walkme_dic_ready", "1 when the resource is Ready.", ["kind", "namespace", "name"])
