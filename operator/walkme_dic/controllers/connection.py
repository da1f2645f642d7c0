"""Connection controller: read the Secret, probe the provider, write Ready (thin kopf handlers)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from walkme_dic import metrics, reasons
from walkme_dic.api.common import GROUP, VERSION
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.conditions import condition_true, find_condition
from walkme_dic.connections import (
    ProbeOutcome,
    connection_status,
    missing_secret_keys,
    probe_due,
    probe_timeout_message,
    probing_status,
)
from walkme_dic.connectors import registry
from walkme_dic.controllers.common import plain, read_secret, status_patch
from walkme_dic.controllers.events import emit
from walkme_dic.controllers.integration import reconcile_integrations_using
from walkme_dic.controllers.runtime import CONNECTIONS, Runtime
from walkme_dic.errors import DicError, validation_message
from walkme_dic.kube import ApiError
from walkme_dic.redaction import redact

log = logging.getLogger("walkme_dic.connection")


@kopf.index(GROUP, VERSION, "connections")
def connection_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): plain(body)}


@kopf.index("v1", "secrets")
def secret_index(namespace: str, name: str, meta: kopf.Meta, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): meta.get("resourceVersion")}


@kopf.on.event(GROUP, VERSION, "connections")
async def connection_event(
    type: str | None, namespace: str, name: str, memo: Runtime, **kwargs: Any,
) -> None:
    memo.bind_indexes(kwargs)
    if type == "DELETED":
        async with memo.locks[("Connection", namespace, name)]:  # after a reconcile in flight, which sets them
            metrics.forget_connection(namespace, name)
    else:
        await reconcile_connection(memo, namespace, name)


@kopf.on.event("v1", "secrets")
async def secret_event(namespace: str, name: str, memo: Runtime, **kwargs: Any) -> None:
    memo.bind_indexes(kwargs)
    for connection in connections_using_secret(memo, namespace, name):
        await reconcile_connection(memo, namespace, connection)


def connections_using_secret(memo: Runtime, namespace: str, secret: str) -> list[str]:
    names = []
    for (ns, name), store in memo.indexes["connection_index"].items():
        for body in store:
            try:
                if ns == namespace and ConnectionSpec.model_validate(body.get("spec") or {}).secret_name == secret:
                    names.append(name)
            except ValidationError:
                continue
    return names


async def reconcile_connection(memo: Runtime, namespace: str, name: str, *, force: bool = False) -> None:
    async with memo.locks[("Connection", namespace, name)]:
        bodies = memo.lookup("connection_index", (namespace, name))
        if not bodies:
            return
        body = memo.freshest("Connection", bodies[0])
        try:
            await _reconcile(memo, body, force=force)
        except Exception:
            metrics.RECONCILE_ERRORS.labels("Connection").inc()
            log.exception("reconciling Connection %s/%s failed", namespace, name)


async def _reconcile(memo: Runtime, body: dict[str, Any], *, force: bool) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    namespace, generation = meta["namespace"], int(meta.get("generation") or 1)
    _export_ready(meta, status)  # also when no probe is due: a restarted operator exports it at once
    now = datetime.now(UTC)
    try:
        spec = ConnectionSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        outcome = ProbeOutcome(False, reasons.INVALID_SPEC, validation_message(error))
        new = connection_status(None, outcome, previous=status, generation=generation, secret_version=None,
                                now=now, stalled=True)
        await _write(memo, body, {**new, "lastProbeTime": status.get("lastProbeTime")})
        return
    secret_version = _indexed_secret_version(memo, namespace, spec.secret_name)
    if not force and not probe_due(spec, status, generation, secret_version, now):
        return
    probing = probing_status(spec, previous=status, generation=generation, now=now)
    if probing is not None:
        body = {**body, "status": await _write(memo, body, probing)}
    outcome, secret_version = await probe(memo, namespace, spec)
    metrics.PROBES.labels(spec.provider, outcome.reason).inc()
    new = connection_status(spec, outcome, previous=body.get("status") or {}, generation=generation,
                            secret_version=secret_version, now=now)
    await _write(memo, body, new)


def _indexed_secret_version(memo: Runtime, namespace: str, secret: str | None) -> str | None:
    if secret is None:
        return None
    versions = memo.lookup("secret_index", (namespace, secret))
    return str(versions[0]) if versions else None


async def probe(memo: Runtime, namespace: str, spec: ConnectionSpec) -> tuple[ProbeOutcome, str | None]:
    """Read the Secret and run the provider's probe; never lets a secret value into the outcome."""
    credentials: dict[str, str] = {}
    version = None
    if spec.secret_name:
        try:
            found = await read_secret(memo.client, namespace, spec.secret_name)
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
        credentials, version = found
        missing = missing_secret_keys(spec, credentials)
        if missing:
            return ProbeOutcome(False, reasons.SECRET_KEY_MISSING, missing), version
    try:
        result = await asyncio.wait_for(asyncio.to_thread(registry.probe, spec, credentials),
                                        timeout=memo.config.probe_timeout_seconds)
    except DicError as error:
        reason = error.reason if error.reason in (reasons.AUTHENTICATION_FAILED, reasons.HOST_KEY_REJECTED) \
            else reasons.PROBE_FAILED
        return ProbeOutcome(False, reason, redact(error.message, credentials.values())), version
    except TimeoutError:
        return ProbeOutcome(False, reasons.PROBE_FAILED,
                            probe_timeout_message(spec, memo.config.probe_timeout_seconds)), version
    except Exception as error:  # an SDK error we did not map: still say something useful
        return ProbeOutcome(False, reasons.PROBE_FAILED,
                            redact(f"{type(error).__name__}: {error}", credentials.values())), version
    return ProbeOutcome(True, reasons.PROBED, result.message), version


async def _write(memo: Runtime, body: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Write status ``new`` (when it differs) and return it; a Ready transition posts one Event."""
    old = body.get("status") or {}
    new = {k: v for k, v in new.items() if v is not None}
    meta = body["metadata"]
    ready = _export_ready(meta, new)
    if new == old:
        return new
    written = await memo.client.patch(CONNECTIONS, meta["namespace"], meta["name"], status_patch(old, new),
                                      status=True)
    memo.written[("Connection", meta["namespace"], meta["name"])] = plain(written)
    condition = find_condition(new.get("conditions"), "Ready") or {}
    before = find_condition(old.get("conditions"), "Ready") or {}
    if (condition.get("status"), condition.get("reason")) != (before.get("status"), before.get("reason")):
        if condition.get("status") != "Unknown":  # Probing is progress, not news: the answer gets the Event
            await emit(memo.client, body, "Normal" if ready else "Warning", condition["reason"],
                       condition["message"])
        await reconcile_integrations_using(memo, meta["namespace"], meta["name"])
    return new


def _export_ready(meta: dict[str, Any], status: dict[str, Any]) -> bool:
    ready = condition_true(status, reasons.READY)
    metrics.CONNECTION_READY.labels(meta["namespace"], meta["name"]).set(1 if ready else 0)
    return ready
