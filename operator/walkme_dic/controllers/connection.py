"""Connection controller: read the Secret by name, probe the provider, write Ready (thin kopf handlers)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from walkme_dic import metrics, reasons
from walkme_dic.api.common import GROUP, VERSION
from walkme_dic.api.connection import ConnectionSpec, ConnectionStatus
from walkme_dic.conditions import condition_true, find_condition
from walkme_dic.connectors import registry
from walkme_dic.connectors.base import Credentials, Limits, ProbeResult
from walkme_dic.controllers.backoff import reconcile_failed, reconciled
from walkme_dic.controllers.common import get_secret, packed, secret_data, status_patch
from walkme_dic.controllers.events import emit
from walkme_dic.controllers.integration import reconcile_integrations_using
from walkme_dic.controllers.runtime import CONNECTIONS, Runtime
from walkme_dic.egress import EgressPolicy, egress_message, enforced, spec_problem
from walkme_dic.errors import DicError, validation_message
from walkme_dic.kube import ApiError
from walkme_dic.planning.connection import (
    ProbeOutcome,
    connection_status,
    endpoint,
    is_unreachable,
    missing_secret_keys,
    probe_due,
    probing_status,
    store_location,
    unreachable_message,
)
from walkme_dic.redaction import redact
from walkme_dic.tenancy import ambient_identity, ambient_refusal, ambient_unprobed_message, secret_refusal

log = logging.getLogger("walkme_dic.connection")


@kopf.index(GROUP, VERSION, "connections")
async def connection_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): packed(body)}


@kopf.index(GROUP, VERSION, "connections")
async def store_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """File Connections by the store they reach (connections.store_location), whatever their namespace."""
    try:
        where = store_location(ConnectionSpec.model_validate(body.get("spec") or {}))
    except ValidationError:
        return {}
    return {where[0]: (namespace, name, where[1])} if where else {}


@kopf.on.event(GROUP, VERSION, "connections")
async def connection_event(
    type: str | None, namespace: str, name: str, memo: Runtime, **kwargs: Any,
) -> None:
    memo.bind_indexes(kwargs)
    if type == "DELETED":
        async with memo.locks[("Connection", namespace, name)]:  # after a reconcile in flight, which sets them
            metrics.forget_connection(namespace, name)
            memo.forget("Connection", namespace, name)
    else:
        await reconcile_connection(memo, namespace, name)


async def reconcile_connection(memo: Runtime, namespace: str, name: str, *, force: bool = False) -> None:
    async with memo.locks[("Connection", namespace, name)]:
        body = memo.latest("Connection", "connection_index", namespace, name)
        if body is None:
            return
        try:
            await _reconcile(memo, body, force=force)
            reconciled(memo, "Connection", namespace, name)
        except Exception as error:
            metrics.RECONCILE_ERRORS.labels("Connection").inc()
            log.exception("reconciling Connection %s/%s failed", namespace, name)
            await reconcile_failed(memo, "Connection", body, error,
                                   lambda: reconcile_connection(memo, namespace, name, force=True))


async def _reconcile(memo: Runtime, body: dict[str, Any], *, force: bool) -> None:
    meta, status = body["metadata"], ConnectionStatus.model_validate(body.get("status") or {})
    namespace, generation = meta["namespace"], int(meta.get("generation") or 1)
    _export_ready(meta, status)  # also when no probe is due: a restarted operator exports it at once
    now = datetime.now(UTC)
    try:
        spec = ConnectionSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        outcome = ProbeOutcome(False, reasons.INVALID_SPEC, validation_message(error))
        new = connection_status(None, outcome, previous=status, generation=generation, secret_version=None,
                                now=now, stalled=True)
        new.last_probe_time = status.last_probe_time  # nothing was probed
        await _write(memo, body, status, new)
        return
    secret_version = await _secret_version(memo, namespace, spec.secret_name)
    if (namespace, meta["name"]) in memo.reprobe:  # a run through it failed with a fault that may pass
        memo.reprobe.discard((namespace, meta["name"]))
        force = True
    if not force and not probe_due(spec, status, generation, secret_version, now):
        return
    probing = probing_status(spec, previous=status, generation=generation, now=now)
    if probing is not None:
        status = await _write(memo, body, status, probing)
    outcome, secret_version = await probe(memo, namespace, spec)
    metrics.PROBES.labels(spec.provider, outcome.reason).inc()
    new = connection_status(spec, outcome, previous=status, generation=generation,
                            secret_version=secret_version, now=now)
    await _write(memo, body, status, new)


async def _secret_version(memo: Runtime, namespace: str, secret: str | None) -> str | None:
    """The Secret's resourceVersion, read by name (its metadata only: no cluster-wide Secret watch, no data)
    on every reconcile and resync pass, so that a changed Secret is probed again within one resync period."""
    if secret is None:
        return None
    try:
        found = await get_secret(memo.client, namespace, secret, metadata_only=True)
    except ApiError:
        return None  # the probe reads it again and says why (SecretForbidden)
    return str(found["metadata"].get("resourceVersion", "")) if found else None


async def probe(memo: Runtime, namespace: str, spec: ConnectionSpec) -> tuple[ProbeOutcome, str | None]:
    """Read the Secret and run the provider's probe; never lets a secret value into the outcome."""
    tenancy = memo.config.tenancy
    refusal = ambient_refusal(spec, namespace, tenancy)
    if refusal is not None:
        return ProbeOutcome(False, reasons.AMBIENT_IDENTITY_NOT_ALLOWED, refusal), None
    refused = spec_problem(spec, memo.config.egress)
    if refused is not None:
        return ProbeOutcome(False, reasons.EGRESS_DENIED, egress_message(refused)), None
    if ambient_identity(spec) is not None and not tenancy.ambient_probe:
        return ProbeOutcome(True, reasons.AMBIENT_IDENTITY, ambient_unprobed_message(spec)), None
    credentials: dict[str, str] = {}
    version = None
    if spec.secret_name:
        try:
            found = await get_secret(memo.client, namespace, spec.secret_name)
        except ApiError as error:
            if error.status != 403:
                raise
            message = (f"the operator may not read Secret {spec.secret_name!r} in namespace {namespace!r} "
                       f"({error.message}); its RBAC (the chart's rbac and watchNamespaces values) must grant get "
                       "on secrets there")
            log.warning(message)
            return ProbeOutcome(False, reasons.SECRET_FORBIDDEN, message), None
        if found is None:
            return ProbeOutcome(False, reasons.SECRET_NOT_FOUND,
                                f"Secret {spec.secret_name!r} not found in namespace {namespace!r}"), None
        version = str(found["metadata"].get("resourceVersion", ""))
        refused = secret_refusal(found, tenancy)
        if refused is not None:
            return ProbeOutcome(False, reasons.SECRET_REFUSED, refused), version
        credentials = secret_data(found)
        missing = missing_secret_keys(spec, credentials)
        if missing:
            return ProbeOutcome(False, reasons.SECRET_KEY_MISSING, missing), version
    policy, timeout = memo.config.egress, memo.config.probe_timeout_seconds
    try:
        result = await memo.probes.run(namespace, lambda: guarded_probe(spec, credentials, policy, timeout), timeout)
    except Exception as error:
        return failed_probe(spec, error, credentials), version
    return ProbeOutcome(True, reasons.PROBED, result.message), version


def guarded_probe(spec: ConnectionSpec, credentials: Credentials, policy: EgressPolicy,
                  timeout: float) -> ProbeResult:
    """The provider's probe, its connections held to the admin's egress rules (in the probe's thread only).

    A thread cannot be cancelled, so the probe's own I/O ends it: the client is built with the probe timeout
    for every connect and read and two attempts, and no connection opens after the timeout. A probe that
    timed out thus ends within about twice the timeout, and its namespace's slot is free again."""
    with enforced(policy, seconds=timeout):
        return registry.probe(spec, credentials, Limits(timeout=timeout))


def failed_probe(spec: ConnectionSpec, error: Exception, credentials: Credentials) -> ProbeOutcome:
    """The outcome of a probe that raised ``error``: a host out of reach reads the same however it failed
    (the detail goes to the operator's log, for the admin); never a secret value."""
    detail = redact(error.message if isinstance(error, DicError) else f"{type(error).__name__}: {error}",
                    credentials.values())
    if isinstance(error, TimeoutError) or is_unreachable(error):
        log.warning("probe of %s failed: %s", endpoint(spec), detail or type(error).__name__)
        return ProbeOutcome(False, reasons.PROBE_FAILED, unreachable_message(spec))
    known = (reasons.AUTHENTICATION_FAILED, reasons.HOST_KEY_REJECTED)
    reason = error.reason if isinstance(error, DicError) and error.reason in known else reasons.PROBE_FAILED
    return ProbeOutcome(False, reason, detail)


async def _write(memo: Runtime, body: dict[str, Any], old: ConnectionStatus, new: ConnectionStatus,
                 ) -> ConnectionStatus:
    """Write status ``new`` over ``old`` (when it differs) and return it; a Ready transition posts one Event."""
    meta = body["metadata"]
    ready = _export_ready(meta, new)
    if new == old:
        return new
    written = await memo.client.patch(CONNECTIONS, meta["namespace"], meta["name"], status_patch(old, new),
                                      status=True)
    memo.remember("Connection", written)
    condition = find_condition(new.conditions, reasons.READY)
    before = find_condition(old.conditions, reasons.READY)
    if condition is not None and (before is None or (condition.status, condition.reason) != (before.status,
                                                                                              before.reason)):
        if condition.status != "Unknown":  # Probing is progress, not news: the answer gets the Event
            await emit(memo.client, body, "Normal" if ready else "Warning", condition.reason, condition.message)
        await reconcile_integrations_using(memo, meta["namespace"], meta["name"])
    return new


def _export_ready(meta: dict[str, Any], status: ConnectionStatus) -> bool:
    ready = condition_true(status.conditions, reasons.READY)
    metrics.CONNECTION_READY.labels(meta["namespace"], meta["name"]).set(1 if ready else 0)
    return ready
