"""Integration controller: resolve Connections, start one Job per due run, read results (thin handlers).

All decisions are made by walkme_dic.planning.integration.plan(); this module only gathers its inputs
from the informer indexes, creates the Job it asks for, writes status and emits Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from walkme_dic import metrics, reasons
from walkme_dic.api.common import GROUP, VERSION
from walkme_dic.api.connection import ConnectionSpec, ConnectionStatus
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.conditions import find_condition, parse_time
from walkme_dic.controllers.backoff import backing_off, later, reconcile_failed, reconciled
from walkme_dic.controllers.common import get_secret, packed, status_patch
from walkme_dic.controllers.events import emit
from walkme_dic.controllers.runtime import INTEGRATIONS, Runtime
from walkme_dic.jobs.manifest import build_job, credential_volumes
from walkme_dic.jobs.naming import LABEL_MANAGED_BY, MANAGED_BY
from walkme_dic.jobs.results import JobSummary, PodSummary, summarize_job, summarize_pod
from walkme_dic.kube import JOBS, ApiError
from walkme_dic.planning.connection import store_location
from walkme_dic.planning.integration import (
    ConnectionView,
    Decision,
    DestinationClaim,
    IntegrationView,
    RunCapacity,
    plan,
)
from walkme_dic.planning.job_refusals import refusal_message, refusal_status, refused
from walkme_dic.tenancy import secret_refusal

log = logging.getLogger("walkme_dic.integration")
OURS = {LABEL_MANAGED_BY: MANAGED_BY}
RECONCILE_CONCURRENCY = 8  # enough to overlap the round trips; KubeClient keeps up to 32 connections


@kopf.index(GROUP, VERSION, "integrations")
async def integration_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): packed(body)}


@kopf.index(GROUP, VERSION, "integrations")
async def destination_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The file each Outbound Integration writes, by (namespace, Connection, path)."""
    claim = destination_claim(name, body)
    return {(namespace, claim.connection, claim.path): claim} if claim else {}


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def job_index(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    summary = summarize_job(dict(body))
    return {(namespace, summary.owner_uid): summary}


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def run_owner_index(namespace: str, name: str, meta: kopf.Meta, **_: Any) -> dict[Any, Any]:
    """Each sync Job's Integration by (namespace, Job name), so that a finished Pod leads to it in one lookup.

    It was a scan of every Job and every Integration of the namespace per Pod event: 36% of the
    operator's CPU in a roll-out of 2,000 Integrations (bench/operator_scale.py, BENCH_OPERATOR_PROFILE).
    """
    owner = next((o["name"] for o in meta.get("ownerReferences") or []
                  if o.get("kind") == "Integration" and o.get("controller")), None)
    return {(namespace, name): owner} if owner else {}


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def active_run_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The names of the sync Jobs still running, by namespace: what the run caps count."""
    return {namespace: name} if summarize_job(dict(body)).state == "Running" else {}


@kopf.index("v1", "pods", labels=OURS)
async def pod_index(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    summary = summarize_pod(dict(body))
    return {(namespace, summary.job_name): summary} if summary else {}


@kopf.on.event(GROUP, VERSION, "integrations")
async def integration_event(type: str | None, namespace: str, name: str, memo: Runtime, **kwargs: Any) -> None:
    memo.bind_indexes(kwargs)
    if type == "DELETED":
        async with memo.locks[("Integration", namespace, name)]:  # after a reconcile in flight, which sets them
            metrics.forget_integration(namespace, name)
            memo.forget("Integration", namespace, name)
    else:
        await reconcile_integration(memo, namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_event(namespace: str, meta: kopf.Meta, memo: Runtime, **kwargs: Any) -> None:
    memo.bind_indexes(kwargs)
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "Integration" and owner.get("controller"):
            await reconcile_integration(memo, namespace, owner["name"])


@kopf.on.event("v1", "pods", labels=OURS)
async def pod_event(namespace: str, body: kopf.Body, memo: Runtime, **kwargs: Any) -> None:
    memo.bind_indexes(kwargs)
    summary = summarize_pod(dict(body))
    if summary is None or not summary.finished:
        return
    for owner in memo.lookup("run_owner_index", (namespace, summary.job_name)):
        await reconcile_integration(memo, namespace, owner)


@kopf.index(GROUP, VERSION, "integrations")
async def connection_users_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Each Integration under (namespace, Connection) for every Connection it refers to, so that a
    Connection's Ready turning leads to its Integrations in one lookup, not a scan of every Integration."""
    return {(namespace, ref): name for ref in referenced_connections(body.get("spec") or {})}


def referenced_connections(spec: Mapping[str, Any]) -> set[str]:
    """The names of the Connections an Integration refers to: connectionRef, walkmeConnectionRef (none for
    exportFiles without one) and exportFiles.connectionRef."""
    refs = {(spec.get(ref) or {}).get("name") for ref in ("connectionRef", "walkmeConnectionRef")}
    return {ref for ref in refs | {export_connection_name(spec)} if ref}


def export_connection_name(spec: Mapping[str, Any]) -> str | None:
    """dataset exportFiles: the name of the Connection of the bucket WalkMe exports into."""
    files = (((spec.get("source") or {}).get("walkme") or {}).get("exportFiles") or {})
    return (files.get("connectionRef") or {}).get("name")


async def reconcile_integrations_using(memo: Runtime, namespace: str, connection: str) -> None:
    """Re-check every Integration in the namespace that refers to ``connection``."""
    names = sorted(set(memo.lookup("connection_users_index", (namespace, connection))))
    await reconcile_each(memo, [(namespace, name) for name in names])


async def reconcile_all(memo: Runtime) -> None:
    """The resync pass: schedules and probe intervals are time-based, not event-based."""
    await reconcile_each(memo, [(namespace, name) for namespace, name in list(memo.indexes["integration_index"].keys())
                                if not backing_off(memo, "Integration", namespace, name)])


async def reconcile_each(memo: Runtime, keys: list[tuple[str, str]]) -> None:
    """Re-plan these Integrations, RECONCILE_CONCURRENCY at a time (each under its own lock).

    One at a time, each reconcile would wait for its API round trips (create the Job, patch the status,
    post the Event) before the next starts. Not measured on its own: in bench/operator_scale.py the
    operator was CPU-bound when this was added, and the later fixes (indexes) were measured with it in.
    """
    gate = asyncio.Semaphore(RECONCILE_CONCURRENCY)

    async def one(namespace: str, name: str) -> None:
        async with gate:
            await reconcile_integration(memo, namespace, name)

    await asyncio.gather(*(one(namespace, name) for namespace, name in keys))


async def reconcile_integration(memo: Runtime, namespace: str, name: str) -> None:
    async with memo.locks[("Integration", namespace, name)]:
        body = memo.latest("Integration", "integration_index", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        try:
            gate = memo.run_gate if memo.config.capped else contextlib.nullcontext()
            async with gate:  # with caps, a count and the Job it allows are one step
                inputs, now = gather(memo, body), datetime.now(UTC)
                claims, capacity = destination_claims(memo, namespace, body), run_capacity(memo, namespace)
                exported = export_connection_name(body.get("spec") or {})
                exports = connection_view(memo, namespace, exported) if exported else None
                decision = plan(*inputs, now, claims=claims, capacity=capacity, exports=exports)
                refusal = await refused_secret(memo, namespace, decision)
                if refusal is not None:  # plan again, blocked: no Job, so no kubelet mounts the Secret
                    decision = plan(replace(inputs[0], secret_refusal=refusal), *inputs[1:], now, claims=claims,
                                    capacity=capacity, exports=exports)
                await apply(memo, body, inputs[0].status, decision)
            reconciled(memo, "Integration", namespace, name)
        except Exception as error:
            metrics.RECONCILE_ERRORS.labels("Integration").inc()
            log.exception("reconciling Integration %s/%s failed", namespace, name)
            await reconcile_failed(memo, "Integration", body, error,
                                   lambda: reconcile_integration(memo, namespace, name), status_of=INTEGRATIONS)


LAUNCH_GRACE = 120.0  # seconds a created Job counts as running before the watch has shown it


def run_capacity(memo: Runtime, namespace: str) -> RunCapacity:
    """Runs going now (Jobs running in the index, plus the ones just created that it does not show yet)."""
    config = memo.config
    if not config.capped:
        return RunCapacity()
    running = {ns: set(store) for ns, store in list(memo.indexes["active_run_index"].items())}
    now = time.monotonic()
    memo.launched = {(ns, job): at for (ns, job), at in memo.launched.items()
                     if job not in running.get(ns, set()) and now - at < LAUNCH_GRACE}
    for ns, job in memo.launched:
        running.setdefault(ns, set()).add(job)
    return RunCapacity(namespace_running=len(running.get(namespace, ())),
                       total_running=sum(len(jobs) for jobs in running.values()),
                       per_namespace=config.max_runs_per_namespace, total=config.max_runs)


async def refused_secret(memo: Runtime, namespace: str, decision: Decision) -> str | None:
    """Why a Secret the planned run's Job would mount may not be used (read by name), or None."""
    if decision.job is None:
        return None
    for volume in credential_volumes(decision.job[0]):
        secret = await get_secret(memo.client, namespace, volume["secret"]["secretName"])
        refusal = secret_refusal(secret, memo.config.tenancy) if secret is not None else None
        if refusal is not None:
            return refusal
    return None


def gather(
    memo: Runtime, body: dict[str, Any],
) -> tuple[IntegrationView, ConnectionView, ConnectionView | None, list[JobSummary], dict[str, list[PodSummary]]]:
    meta, spec = body["metadata"], body.get("spec") or {}
    namespace = meta["namespace"]
    view = IntegrationView(
        namespace=namespace,
        name=meta["name"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 1),
        created=parse_time(meta.get("creationTimestamp")) or datetime.now(UTC),
        annotations=dict(meta.get("annotations") or {}),
        spec=spec,
        status=IntegrationStatus.model_validate(body.get("status") or {}),
    )
    jobs = memo.lookup("job_index", (namespace, view.uid))
    pods = {job.name: memo.lookup("pod_index", (namespace, job.name)) for job in jobs}
    external = connection_view(memo, namespace, (spec.get("connectionRef") or {}).get("name", ""))
    walkme_name = (spec.get("walkmeConnectionRef") or {}).get("name")  # none: exportFiles calls no WalkMe API
    walkme = connection_view(memo, namespace, walkme_name) if walkme_name is not None else None
    return view, external, walkme, jobs, pods


def destination_claim(name: str, body: Mapping[str, Any]) -> DestinationClaim | None:
    meta = body.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp")) or datetime.now(UTC)
    return DestinationClaim.of(name, created, body.get("spec") or {}, meta.get("namespace", ""))


def destination_claims(memo: Runtime, namespace: str, body: dict[str, Any]) -> list[DestinationClaim]:
    """Other Outbound Integrations that write the object ``body`` writes (see integrations._conflict): through
    its Connection at its path, or through any Connection, in any namespace, reaching the same store where
    that Connection's prefix + the path is this one's prefix + path.

    Index lookups only: building every claim of the namespace on each reconcile made a roll-out of 2,000
    Integrations in one namespace quadratic (bench/operator_scale.py under BENCH_OPERATOR_PROFILE).
    """
    name = body["metadata"]["name"]
    mine = destination_claim(name, body)
    if mine is None:
        return []
    found = memo.lookup("destination_index", (namespace, mine.connection, mine.path))
    connection = connection_view(memo, namespace, mine.connection).spec
    where = store_location(connection) if connection else None
    if where is not None:
        store, prefix = where
        key = prefix + mine.path
        for other_namespace, other, other_prefix in memo.lookup("store_index", store):
            if (other_namespace, other) != (namespace, mine.connection) and key.startswith(other_prefix):
                found += memo.lookup("destination_index", (other_namespace, other, key[len(other_prefix):]))
    return [c for c in found if (c.namespace, c.integration) != (namespace, name)]


def connection_view(memo: Runtime, namespace: str, name: str) -> ConnectionView:
    body = memo.latest("Connection", "connection_index", namespace, name)
    if body is None:
        return ConnectionView(name=name, exists=False)
    try:
        spec = ConnectionSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        spec = None
    status = ConnectionStatus.model_validate(body.get("status") or {})
    ready = find_condition(status.conditions, reasons.READY)
    current = status.observed_generation == body["metadata"].get("generation")
    return ConnectionView(
        name=name, exists=True, spec=spec,
        ready=ready is not None and ready.status == "True" and current and spec is not None,
        message=(ready.message if ready else "") if current else "waiting for the first probe of its current spec",
        probing=not current or ready is None or ready.status == "Unknown",
    )


async def _job_refused(memo: Runtime, body: dict[str, Any], old: IntegrationStatus, job: str, error: ApiError,
                       ) -> None:
    """The API server refused the run's Job: back off (job_refusals.py), say so in status and, once per distinct
    refusal, in a Warning Event, and reconcile again when the wait is over."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    previous = memo.refusals.get((namespace, name))
    refusal = refused(previous, error.message, time.monotonic())
    memo.refusals[(namespace, name)] = refusal
    message = refusal_message(job, refusal)
    log.warning("Integration %s/%s: %s", namespace, name, message)
    new = refusal_status(old, message, generation=int(meta.get("generation") or 1), now=datetime.now(UTC))
    written = await memo.client.patch(INTEGRATIONS, namespace, name, status_patch(old, new), status=True)
    memo.remember("Integration", written)
    if previous is None or previous.message != refusal.message:
        await emit(memo.client, body, "Warning", reasons.JOB_CREATE_FAILED, message)
    later(memo, refusal.wait, lambda: reconcile_integration(memo, namespace, name))


async def apply(memo: Runtime, body: dict[str, Any], old: IntegrationStatus, decision: Decision) -> None:
    """Create the Job the plan asks for, then write status (``old`` as planned from), then emit Events and
    metrics."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if decision.job is None:
        memo.refusals.pop((namespace, name), None)
    else:
        request, key = decision.job
        refusal = memo.refusals.get((namespace, name))
        if refusal is not None and time.monotonic() < refusal.retry_at:
            return  # refused a moment ago: status says so, and a reconcile is due when the wait is over
        try:
            await memo.client.create(JOBS, namespace, build_job(request, key, memo.config.image))
            metrics.JOBS_CREATED.labels(namespace).inc()
            if memo.config.capped:
                memo.launched[(namespace, request.run_id)] = time.monotonic()
        except ApiError as error:
            if error.status != 409:  # 409: a Job for this run exists already, we adopt it
                await _job_refused(memo, body, old, request.run_id, error)
                return
        memo.refusals.pop((namespace, name), None)
    if decision.status_changed:
        written = await memo.client.patch(INTEGRATIONS, namespace, name, status_patch(old, decision.status),
                                          status=True)
        memo.remember("Integration", written)
    for job in decision.delete_jobs:  # runs that fell out of the history: their Jobs go too
        await memo.client.delete(JOBS, namespace, job)
    for event in decision.events:
        await emit(memo.client, body, event.type, event.reason, event.message)
    gauges = await asyncio.to_thread(  # a schedule seen for the first time costs ~0.5 s of cron arithmetic
        metrics.integration_gauges, body.get("spec") or {}, decision.status, meta.get("creationTimestamp"))
    metrics.observe_integration(namespace, name, gauges)
    if decision.finished is not None:
        result = decision.finished.result
        if result.result == "Failed" and result.retryable:  # S3 down, a reset connection: still Ready?
            memo.reprobe.update((namespace, ref) for ref in referenced_connections(body.get("spec") or {}))
        metrics.RUNS.labels(namespace, name, result.result).inc()
        metrics.RUN_DURATION.labels(namespace, name).observe(decision.finished.seconds)
        for outcome, value in (("read", result.rows_read), ("written", result.rows_written),
                               ("rejected", result.rows_rejected)):
            metrics.ROWS.labels(namespace, name, outcome).inc(value)
