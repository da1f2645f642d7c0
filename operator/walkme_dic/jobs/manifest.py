"""The Job manifest for one run, built by a pure function.

The Job runs `walkme-dic sync` from the operator's image. The run's request (the resolved spec,
no credentials) travels in the WALKME_DIC_REQUEST environment variable; credentials arrive as
Secret volumes under /var/run/walkme-dic/credentials/<role>/<key>. The pod has no service
account token, runs as a non-root user on a read-only root filesystem.

/tmp is the pod's only writable place (an emptyDir): an inbound run spools every mapped record
there before sending (sync/spool.py, about 100 bytes a row). Unless ``spec.job.resources`` names
``ephemeral-storage`` (a request, a limit or both, taken as given), the Job requests
SPOOL_STORAGE_REQUEST and is limited to SPOOL_STORAGE_LIMIT; the limit is also the emptyDir's
sizeLimit, so a run beyond it is evicted instead of filling the node's disk.

The operator's own proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, upper or lower case) are passed
on to every Job, so that in a cluster whose egress goes through a proxy the runs reach WalkMe and
the other side as the operator's probes do. A proxy URL that carries credentials is not passed on:
a Job's spec is readable by whoever may read Jobs, and secrets stay in Secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from walkme_dic.api.common import API_VERSION
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import SPOOL_STORAGE_LIMIT, SPOOL_STORAGE_REQUEST
from walkme_dic.api.run import EXIT_INVALID_REQUEST, EXIT_PERMANENT, REQUEST_ENV, SyncRequest
from walkme_dic.egress import POLICY_ENV, EgressPolicy
from walkme_dic.jobs.naming import (
    ANNOTATION_GENERATION,
    ANNOTATION_SLOT,
    ANNOTATION_TRIGGER,
    RunKey,
    run_labels,
)
from walkme_dic.tenancy import ambient_identity

CREDENTIALS_DIR = "/var/run/walkme-dic/credentials"
TERMINATION_LOG = "/dev/termination-log"
SYNC_CONTAINER = "sync"
NON_ROOT_UID = 65532
EPHEMERAL_STORAGE = "ephemeral-storage"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


@dataclass(frozen=True)
class JobImage:
    """What every sync Job's container gets from the operator: the image, its pull policy, the proxy
    variables (name, value) of the operator's environment (:func:`proxy_settings`) and the admin's egress
    rules (walkme_dic.egress)."""

    image: str
    pull_policy: str = "IfNotPresent"
    proxy: tuple[tuple[str, str], ...] = ()
    egress: EgressPolicy = field(default_factory=EgressPolicy)


class ProxySettings(NamedTuple):
    passed: tuple[tuple[str, str], ...]  # (name, value) every Job gets
    withheld: tuple[str, ...]  # names of proxy URLs with credentials in them, not passed on


def proxy_settings(environ: Mapping[str, str]) -> ProxySettings:
    """The proxy variables set in ``environ``, but for proxy URLs that carry a user name or password."""
    passed, withheld = [], []
    for name in PROXY_VARIABLES:
        value = environ.get(name)
        if value is None:
            continue
        if name.lower() != "no_proxy" and _has_credentials(value):
            withheld.append(name)
        else:
            passed.append((name, value))
    return ProxySettings(tuple(passed), tuple(withheld))


def _has_credentials(url: str) -> bool:
    parts = urlsplit(url if "://" in url else f"http://{url}")  # "proxy:3128" means http://proxy:3128
    return parts.username is not None or parts.password is not None


def build_job(request: SyncRequest, key: RunKey, image: JobImage) -> dict[str, Any]:
    """A batch/v1 Job for ``request``, owned by its Integration."""
    identity = request.integration
    labels = run_labels(identity.name, request.run_id)
    settings = request.spec.job
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(request, image)],
        "volumes": [_tmp_volume(request), *credential_volumes(request)],
    }
    if settings.service_account_name:
        pod_spec["serviceAccountName"] = settings.service_account_name
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in settings.tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": request.run_id,
            "namespace": identity.namespace,
            "labels": labels,
            "annotations": {
                ANNOTATION_TRIGGER: key.trigger,
                ANNOTATION_GENERATION: str(identity.generation),
                **({ANNOTATION_SLOT: request.slot} if request.slot else {}),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Integration",
                    "name": identity.name,
                    "uid": identity.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
                "containerName": SYNC_CONTAINER, "operator": "In", "values": [EXIT_INVALID_REQUEST, EXIT_PERMANENT]}}]},
            "activeDeadlineSeconds": settings.active_deadline_seconds,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _resources(request: SyncRequest) -> dict[str, dict[str, str]]:
    """The container's requests and limits: the spec's, with the spool's disk unless it names its own."""
    resources = request.spec.job.resources
    requests, limits = dict(resources.requests), dict(resources.limits)
    if EPHEMERAL_STORAGE not in requests and EPHEMERAL_STORAGE not in limits:
        requests[EPHEMERAL_STORAGE] = SPOOL_STORAGE_REQUEST
        limits[EPHEMERAL_STORAGE] = SPOOL_STORAGE_LIMIT
    return {"requests": requests, "limits": limits}


def _tmp_volume(request: SyncRequest) -> dict[str, Any]:
    limit = _resources(request)["limits"].get(EPHEMERAL_STORAGE)
    return {"name": "tmp", "emptyDir": {"sizeLimit": limit} if limit else {}}


def _container(request: SyncRequest, image: JobImage) -> dict[str, Any]:
    return {
        "name": SYNC_CONTAINER,
        "image": image.image,
        "imagePullPolicy": image.pull_policy,
        "command": ["walkme-dic", "sync"],
        "args": ["--credentials", CREDENTIALS_DIR, "--result", TERMINATION_LOG],
        "env": [
            {"name": REQUEST_ENV, "value": request.model_dump_json(by_alias=True, exclude_none=True)},
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            *({"name": name, "value": value} for name, value in image.proxy),
            {"name": POLICY_ENV, "value": job_egress(request, image).model_dump_json(by_alias=True)},
        ],
        "resources": _resources(request),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                {"name": v["name"], "mountPath": f"{CREDENTIALS_DIR}/{v['name']}", "readOnly": True}
                for v in credential_volumes(request)
            ),
        ],
    }


def job_egress(request: SyncRequest, image: JobImage) -> EgressPolicy:
    """The egress rules of this run: the admin's, with the metadata server when a Connection uses ambient
    identity (which the operator only lets through where the admin allowed it: walkme_dic.tenancy) and the
    proxy hosts the Job is given."""
    connections = [spec for _, spec in request.connections()]
    ambient = any(ambient_identity(spec) is not None for spec in connections)
    proxies = [value for name, value in image.proxy if name.lower() != "no_proxy"]
    return image.egress.job_policy(metadata=ambient, proxies=proxies)


def credential_volumes(request: SyncRequest) -> list[dict[str, Any]]:
    """One Secret volume per credential role that has a Secret."""
    volumes = []
    external = _connection_secret_volume("external", request.connection)
    if external:
        volumes.append(external)
    walkme = _connection_secret_volume("walkme", request.walkme_connection) if request.walkme_connection else None
    if walkme:
        volumes.append(walkme)
    token = request.spec.destination.walkme.integration_token_secret_ref if request.spec.destination.walkme else None
    if token:
        volumes.append(_secret_volume("integration-token", token.name, [token.key]))
    exports = _connection_secret_volume("exports", request.export_connection) if request.export_connection else None
    if exports:
        volumes.append(exports)
    return volumes


def _connection_secret_volume(role: str, connection: ConnectionSpec) -> dict[str, Any] | None:
    name = connection.secret_name
    if name is None:
        return None
    keyed = connection.azure_blob or connection.gcs
    only_key = keyed.auth.secret_ref.key if keyed and keyed.auth.secret_ref else None
    return _secret_volume(role, name, [only_key] if only_key else None)


def _secret_volume(role: str, secret: str, keys: list[str] | None) -> dict[str, Any]:
    source: dict[str, Any] = {"secretName": secret, "defaultMode": 0o440}
    if keys:
        source["items"] = [{"key": k, "path": k} for k in keys]
    return {"name": role, "secret": source}
