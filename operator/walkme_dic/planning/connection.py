"""Connection reconciliation as plain functions: is a probe due, which keys are missing, what status."""

from __future__ import annotations

import errno
import posixpath
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from walkme_dic import reasons
from walkme_dic.api.common import parse_duration
from walkme_dic.api.connection import (
    S3_SECRET_KEYS,
    SALESFORCE_SECRET_KEY_SETS,
    SFTP_KNOWN_HOSTS_KEY,
    SFTP_SECRET_KEY_SETS,
    WALKME_SECRET_KEYS,
    WEBHOOK_SIGNING_KEY,
    ConnectionSpec,
    ConnectionStatus,
)
from walkme_dic.conditions import condition_true, find_condition, parse_time, rfc3339, set_condition
from walkme_dic.errors import UnreachableError

FAILED_PROBE_RETRY = timedelta(seconds=60)


@dataclass(frozen=True)
class ProbeOutcome:
    ready: bool
    reason: str
    message: str


def missing_secret_keys(spec: ConnectionSpec, data: Mapping[str, str]) -> str | None:
    """A message naming the keys the provider needs but the Secret lacks, or None."""
    present = {k for k, v in data.items() if v}
    if spec.s3:
        needed: tuple[tuple[str, ...], ...] = (S3_SECRET_KEYS,)
    elif spec.azure_blob and spec.azure_blob.auth.secret_ref:
        needed = ((spec.azure_blob.auth.secret_ref.key,),)
    elif spec.gcs and spec.gcs.auth.secret_ref:
        needed = ((spec.gcs.auth.secret_ref.key,),)
    elif spec.webhook:
        needed = ((WEBHOOK_SIGNING_KEY,),)
    elif spec.salesforce:
        needed = SALESFORCE_SECRET_KEY_SETS
    elif spec.sftp:
        pinned = () if spec.sftp.host_keys else (SFTP_KNOWN_HOSTS_KEY,)
        needed = tuple((*keys, *pinned) for keys in SFTP_SECRET_KEY_SETS)
    else:
        needed = (WALKME_SECRET_KEYS,)
    if any(set(keys) <= present for keys in needed):
        return None
    wanted = " or ".join("+".join(keys) for keys in needed)
    found = ", ".join(sorted(present)) or "none"
    return f"Secret {spec.secret_name!r} must have keys {wanted} (found keys: {found})"


def probe_due(
    spec: ConnectionSpec, status: ConnectionStatus, generation: int, secret_version: str | None, now: datetime,
) -> bool:
    """Probe when the spec or Secret changed, or the interval (shorter after a failure) has passed."""
    if status.observed_generation != generation or status.secret_version != secret_version:
        return True
    if condition_true(status.conditions, reasons.RECONCILING):  # a probe that never finished (operator restarted)
        return True
    last = parse_time(status.last_probe_time)
    if last is None:
        return True
    return now - last >= probe_wait(spec, status)


def probe_wait(spec: ConnectionSpec, status: ConnectionStatus) -> timedelta:
    """How long after the last probe the next one is due: the probe interval while Ready; after a failure
    FAILED_PROBE_RETRY, then doubling (the time it has been failing, at the last probe), up to the interval."""
    interval = parse_duration(spec.probe_interval)
    if condition_true(status.conditions, reasons.READY):
        return interval
    last = parse_time(status.last_probe_time)
    ready = find_condition(status.conditions, reasons.READY)
    since = parse_time(ready.last_transition_time if ready else None)
    failing = last - since if last and since and last > since else timedelta(0)
    return min(interval, max(FAILED_PROBE_RETRY, failing))


def connection_status(
    spec: ConnectionSpec | None,
    outcome: ProbeOutcome,
    *,
    previous: ConnectionStatus,
    generation: int,
    secret_version: str | None,
    now: datetime,
    stalled: bool = False,
) -> ConnectionStatus:
    """The full status after a probe (or after finding the spec invalid)."""
    conditions = list(previous.conditions)
    ready = "True" if outcome.ready else "False"
    conditions = set_condition(conditions, reasons.READY, ready, outcome.reason, outcome.message,
                               generation=generation, now=now)
    conditions = set_condition(conditions, reasons.RECONCILING, "False", reasons.IDLE, "",
                               generation=generation, now=now)
    conditions = set_condition(
        conditions, reasons.STALLED, "True" if stalled else "False",
        outcome.reason if stalled else reasons.IDLE, outcome.message if stalled else "",
        generation=generation, now=now,
    )
    probed = previous.clone()  # every field is set anew; a field of another version stays
    probed.observed_generation, probed.provider, probed.conditions = generation, spec.provider if spec else None, \
        conditions
    probed.last_probe_time, probed.secret_version, probed.message = rfc3339(now), secret_version, outcome.message
    return probed


def endpoint(spec: ConnectionSpec) -> str:
    """What the probe of ``spec`` talks to, for messages: the host (and bucket or container) to check."""
    if spec.s3:
        host = _host(spec.s3.endpoint_url) if spec.s3.endpoint_url else f"s3.{spec.s3.region}.amazonaws.com"
        return f"bucket {spec.s3.bucket!r} at {host}"
    if spec.azure_blob:
        return f"container {spec.azure_blob.container!r} at {_host(spec.azure_blob.account_url)}"
    if spec.salesforce:
        return f"Salesforce at {_host(spec.salesforce.login_url or spec.salesforce.instance_url or '')}"
    if spec.walkme:
        return f"the WalkMe API at {_host(spec.walkme.api_url)}"
    if spec.sftp:
        return f"folder {spec.sftp.path or '~'!r} on {spec.sftp.host}:{spec.sftp.port}"
    return f"the {spec.provider} endpoint"


def store_location(spec: ConnectionSpec) -> tuple[str, str] | None:
    """Where a file Connection's objects live: (the store, the prefix its paths go under), the store named
    alike for every Connection that reaches the same bucket, container or SFTP folder tree, in any namespace.
    Two such Connections write one object when prefix + path agree (see controllers.integration)."""
    if spec.s3:
        return f"s3 {(spec.s3.endpoint_url or 'aws').lower().rstrip('/')} {spec.s3.bucket}", spec.s3.prefix
    if spec.azure_blob:
        return f"azure {spec.azure_blob.account_url.lower().rstrip('/')} {spec.azure_blob.container}", \
            spec.azure_blob.prefix
    if spec.gcs:
        return f"gcs {(spec.gcs.endpoint_url or 'google').lower().rstrip('/')} {spec.gcs.bucket}", spec.gcs.prefix
    if spec.sftp:
        server, folder = f"sftp {spec.sftp.host.lower()}:{spec.sftp.port}", posixpath.normpath(spec.sftp.path or ".")
        if folder.startswith("/"):  # posixpath keeps a leading //, which the server reads as /
            folder = "/" + folder.lstrip("/")
        else:  # under the user's login folder
            server, folder = f"{server} ~{spec.sftp.username}", "" if folder == "." else folder
        return server, f"{folder.rstrip('/')}/" if folder else ""
    return None


def unreachable_message(spec: ConnectionSpec) -> str:
    """One message for every way a host can be out of reach, so that probes cannot map a network: refused,
    reset, timed out, a name that does not resolve, a TLS handshake that fails and an address the egress
    rules refuse all read the same in status (the operator's log, the admin's, says which it was)."""
    return (f"cannot reach {endpoint(spec)}: no connection could be made (refused, timed out, name not "
            "resolved, TLS failed or refused by the cluster admin's egress rules: these are not told apart "
            "here). Check the address and that the host is reachable from the cluster (DNS, firewall, proxy)")


UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, TimeoutError, socket.gaierror, socket.herror, ssl.SSLError, UnreachableError,
)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is a failure to connect."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UNREACHABLE_ERRORS) or _connect_errno(current):
            return True
        wrapped = getattr(current, "inner_exception", None) or getattr(current, "cause", None)  # azure, google
        current = current.__cause__ or current.__context__ or (wrapped if isinstance(wrapped, BaseException) else None)
    return False


def _connect_errno(error: BaseException) -> bool:
    """A connect failure by its errno; or one that holds the failure of each address it tried (paramiko's
    NoValidConnectionsError: errno None, ``errors`` by address)."""
    if not isinstance(error, OSError):
        return False
    per_address = getattr(error, "errors", None)
    if isinstance(per_address, dict) and per_address:
        return all(isinstance(e, BaseException) and is_unreachable(e) for e in per_address.values())
    return error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.ETIMEDOUT)


def probing_status(
    spec: ConnectionSpec, *, previous: ConnectionStatus, generation: int, now: datetime,
) -> ConnectionStatus | None:
    """The status to show while the first probe of this generation runs, or None when the spec was probed.

    Probes can take as long as the probe timeout; until the answer, Reconciling=True and Ready=Unknown
    with reason Probing say so (kstatus: in progress). A periodic re-probe of an unchanged spec keeps the
    last answer instead, so Ready does not blink every probe interval.
    """
    if previous.observed_generation == generation and find_condition(previous.conditions, reasons.READY):
        return None
    message = f"probing {endpoint(spec)}"
    conditions = list(previous.conditions)
    for type_, value in ((reasons.READY, "Unknown"), (reasons.RECONCILING, "True")):
        conditions = set_condition(conditions, type_, value, reasons.PROBING, message, generation=generation, now=now)
    conditions = set_condition(conditions, reasons.STALLED, "False", reasons.IDLE, "", generation=generation, now=now)
    probing = previous.clone()
    probing.observed_generation, probing.provider, probing.conditions = generation, spec.provider, conditions
    probing.message = message
    return probing


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
