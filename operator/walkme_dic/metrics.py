"""Prometheus metrics of the operator (served on --metrics-port).

Names follow Prometheus conventions: counters end in `_total`, times are `_seconds` (durations)
or `_timestamp_seconds` (Unix time), ratios are 0..1. Per-object series carry `namespace` plus
`integration` or `connection`, so an alert can name the object to `kubectl describe`.

Per-Integration gauges are derived from the Integration's spec and status on every reconcile by
`integration_gauges()` (a pure function), so a restarted operator exports the same values at once.
They are kept as one `IntegrationGauges` per Integration and become series only when scraped
(`IntegrationGaugeCollector`): a prometheus_client `Gauge` child per series (13 per Integration) took
11.4 KB per Integration with its run counters, now 4.2 KB (tracemalloc, 1,000 Integrations): ~14 MB of the
operator's memory at 2,000. The run counters and the run duration histogram accumulate, so they stay
prometheus_client metrics.
The chart's PrometheusRule and Grafana dashboard use these names; tests/unit/test_alert_rules.py
and test_dashboard.py fail when they name a metric this module does not export.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from walkme_dic.api.integration import IntegrationSpec, IntegrationStatus
from walkme_dic.conditions import condition_true, parse_time
from walkme_dic.schedule import max_interval

INTEGRATION = ["namespace", "integration"]
CONNECTION = ["namespace", "connection"]
RUN_RESULTS = ("Succeeded", "Failed", "Skipped")
ROW_OUTCOMES = ("read", "written", "rejected")

RUNS = Counter("walkme_dic_runs_total", "Sync runs finished, by result.", [*INTEGRATION, "result"])
ROWS = Counter("walkme_dic_rows_total", "Rows handled by finished runs, by outcome (read, written, rejected).",
               [*INTEGRATION, "outcome"])
RUN_DURATION = Histogram(
    "walkme_dic_run_duration_seconds", "Wall time of finished runs.", INTEGRATION,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
RECONCILE_ERRORS = Counter("walkme_dic_reconcile_errors_total", "Reconciles that raised.", ["kind"])
JOBS_CREATED = Counter("walkme_dic_jobs_created_total", "Sync Jobs created.", ["namespace"])
PROBES = Counter("walkme_dic_connection_probes_total", "Connection probes, by outcome.", ["provider", "reason"])
CONNECTION_READY = Gauge("walkme_dic_connection_ready", "1 when the Connection is Ready.", CONNECTION)
for _kind in ("Connection", "Integration"):
    RECONCILE_ERRORS.labels(_kind)  # exported at 0 from the start, so increase() sees the first error


@dataclass(frozen=True, slots=True)
class IntegrationGauges:
    """The per-Integration gauge values; None means the series is absent."""

    ready: bool
    suspended: bool
    created: float
    last_success: float | None
    last_run: float | None
    last_run_failed: bool
    last_run_rows: dict[str, int] | None
    next_schedule: float | None
    schedule_max_interval: float | None
    rejected_rows_limit: int | None
    rejected_ratio_limit: float | None


def integration_gauges(spec: dict[str, Any], status: IntegrationStatus, created: str | None) -> IntegrationGauges:
    """What the gauges of one Integration say, from its spec and status alone."""
    try:
        parsed: IntegrationSpec | None = IntegrationSpec.model_validate(spec)
    except ValidationError:
        parsed = None
    finished = [r for r in status.runs if r.completion_time]
    last = finished[0] if finished else None
    success = next((r for r in finished if r.result in ("Succeeded", "Skipped")), None)
    last_success = _unix(status.last_success_time) or _unix(success.completion_time if success else None)
    schedule = parsed.schedule if parsed else None
    return IntegrationGauges(
        ready=condition_true(status.conditions, "Ready"),
        suspended=bool(parsed and parsed.suspend),
        created=_unix(created) or 0.0,
        last_success=last_success,
        last_run=_unix(last.completion_time) if last else None,
        last_run_failed=status.last_result is not None and status.last_result.result == "Failed",
        last_run_rows={"read": last.rows_read, "written": last.rows_written, "rejected": last.rows_rejected}
        if last else None,
        next_schedule=_unix(status.next_schedule_time),
        schedule_max_interval=max_interval(schedule, parsed.time_zone) if parsed and schedule else None,
        rejected_rows_limit=parsed.max_rejected_rows if parsed else None,
        rejected_ratio_limit=parsed.max_rejected_percent / 100 if parsed and parsed.max_rejected_percent is not None
        else None,
    )


Value = Callable[[IntegrationGauges], float | None]
# name, help, the value of one Integration's series (None: the series is absent)
GAUGES: tuple[tuple[str, str, Value], ...] = (
    ("walkme_dic_integration_ready", "1 when the Integration is Ready.", lambda g: float(g.ready)),
    ("walkme_dic_integration_suspended", "1 when spec.suspend is true.", lambda g: float(g.suspended)),
    ("walkme_dic_integration_created_timestamp_seconds", "When the Integration was created (Unix time).",
     lambda g: g.created),
    ("walkme_dic_integration_last_success_timestamp_seconds",
     "When the last Succeeded or Skipped run finished (Unix time).", lambda g: g.last_success),
    ("walkme_dic_integration_last_run_timestamp_seconds",
     "When the last finished run finished, whatever its result (Unix time).", lambda g: g.last_run),
    ("walkme_dic_integration_last_run_failed", "1 while the last finished run is Failed.",
     lambda g: float(g.last_run_failed)),
    ("walkme_dic_integration_next_schedule_timestamp_seconds",
     "Next scheduled slot (Unix time); absent without a schedule or when suspended.", lambda g: g.next_schedule),
    ("walkme_dic_integration_schedule_max_interval_seconds",
     "Longest gap between two slots of the schedule; absent without a schedule.",
     lambda g: g.schedule_max_interval),
    ("walkme_dic_integration_rejected_rows_limit", "spec.maxRejectedRows; absent when not set.",
     lambda g: g.rejected_rows_limit),
    ("walkme_dic_integration_rejected_ratio_limit", "spec.maxRejectedPercent as a ratio (0..1); absent when not set.",
     lambda g: g.rejected_ratio_limit),
)


class IntegrationGaugeCollector(Collector):
    """Every Integration's gauges, from its last `IntegrationGauges`, when Prometheus scrapes."""

    def __init__(self) -> None:
        self.integrations: dict[tuple[str, str], IntegrationGauges] = {}

    def collect(self) -> Iterator[Metric]:
        current = list(self.integrations.items())  # a scrape runs in the metrics server's thread
        for name, documentation, value in GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=INTEGRATION)
            for labels, gauges in current:
                measured = value(gauges)
                if measured is not None:
                    family.add_metric(labels, measured)
            yield family
        rows = GaugeMetricFamily("walkme_dic_integration_last_run_rows", "Rows of the last finished run, by outcome.",
                                 labels=[*INTEGRATION, "outcome"])
        for labels, gauges in current:
            for outcome, count in (gauges.last_run_rows or {}).items():
                rows.add_metric([*labels, outcome], count)
        yield rows


INTEGRATION_GAUGES = IntegrationGaugeCollector()
REGISTRY.register(INTEGRATION_GAUGES)


def observe_integration(namespace: str, name: str, gauges: IntegrationGauges) -> None:
    """The Integration's gauges say ``gauges`` from now on; its run counters are exported (at 0 until a run)."""
    labels = (namespace, name)
    INTEGRATION_GAUGES.integrations[labels] = gauges
    for result in RUN_RESULTS:
        RUNS.labels(*labels, result)  # at 0 before the first run of that result, so increase() counts it
    for outcome in ROW_OUTCOMES:
        ROWS.labels(*labels, outcome)


def forget_integration(namespace: str, name: str) -> None:
    """A deleted Integration leaves no series behind."""
    INTEGRATION_GAUGES.integrations.pop((namespace, name), None)
    for outcome in ROW_OUTCOMES:
        _remove(ROWS, (namespace, name, outcome))
    for result in RUN_RESULTS:
        _remove(RUNS, (namespace, name, result))
    _remove(RUN_DURATION, (namespace, name))


def forget_connection(namespace: str, name: str) -> None:
    _remove(CONNECTION_READY, (namespace, name))


def _remove(metric: Gauge | Counter | Histogram, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never exported: nothing to remove
        metric.remove(*labels)


def _unix(text: str | None) -> float | None:
    moment = parse_time(text)
    return moment.timestamp() if moment else None
