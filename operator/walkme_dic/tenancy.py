"""What a tenant may use, as the cluster admin decided it: ambient identity and Secrets (pure functions).

A tenant is whoever may create Connections and Integrations in a namespace. The operator runs with
its own identity and RBAC; nothing a tenant writes may borrow either:

* **Ambient identity** — a Connection without Secret credentials (S3 without ``auth.secretRef``: the
  default AWS credential chain; Azure ``auth.workloadIdentity``; GCS without ``auth.secretRef``:
  Application Default Credentials). In the operator's process those credentials are the operator's
  own, so a probe would send them wherever the tenant's URL points. The admin lists the namespaces
  that may use ambient identity (``--ambient-identity-namespace``, chart value
  ``tenancy.ambientIdentity.namespaces``, ``*`` for all); elsewhere such a Connection is
  ``Ready=False`` with reason ``AmbientIdentityNotAllowed``. Where it is allowed, each run uses the
  identity of the ServiceAccount its Job runs as (``spec.job.serviceAccountName``: IRSA, GKE or Azure
  workload identity bind cloud identities to ServiceAccounts), and the operator probes it with its own
  identity only when the admin also allowed that (``--ambient-identity-probe``,
  ``tenancy.ambientIdentity.probe``); otherwise it is ``Ready=True`` with reason ``AmbientIdentity``
  and the first run is the check.
* **Secrets** — a tenant names Secrets of its own namespace; the operator reads them by name (GET,
  never list or watch). Service-account token Secrets (type ``kubernetes.io/service-account-token``)
  are never used: their token is an identity in the cluster, not a credential for an outside system.
  When the admin names a label (``--secret-label KEY=VALUE``, ``tenancy.secretLabel``), only Secrets
  carrying it are used — other Secrets of the namespace stay out of reach even for a tenant who can
  name them. A refused Secret is ``Ready=False`` with reason ``SecretRefused``, on the Connection
  (probe) and on the Integration (no Job is created, so the kubelet never mounts it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from walkme_dic.api.connection import ConnectionSpec

ALL_NAMESPACES = "*"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"


@dataclass(frozen=True)
class TenancyPolicy:
    ambient_namespaces: frozenset[str] = frozenset()  # "*" allows every namespace
    ambient_probe: bool = False
    secret_label: tuple[str, str] | None = None

    def ambient_allowed(self, namespace: str) -> bool:
        return ALL_NAMESPACES in self.ambient_namespaces or namespace in self.ambient_namespaces


def parse_label(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may be empty) → (KEY, VALUE); ValueError naming the flag otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--secret-label: want KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def ambient_identity(spec: ConnectionSpec) -> str | None:
    """Which ambient identity ``spec`` would use, for messages; None when it names Secret credentials."""
    if spec.s3 and spec.s3.auth.secret_ref is None:
        return "the default AWS credential chain (no auth.secretRef)"
    if spec.azure_blob and spec.azure_blob.auth.workload_identity is not None:
        return "Azure workload identity (auth.workloadIdentity)"
    if spec.gcs and spec.gcs.auth.secret_ref is None and not spec.gcs.auth.anonymous:
        return "Google Application Default Credentials (no auth.secretRef)"
    return None


def ambient_refusal(spec: ConnectionSpec, namespace: str, policy: TenancyPolicy) -> str | None:
    """Why ``spec`` may not use ambient identity in ``namespace``, or None."""
    uses = ambient_identity(spec)
    if uses is None or policy.ambient_allowed(namespace):
        return None
    return (f"this Connection uses {uses}, which the cluster admin has not allowed in namespace {namespace!r} "
            "(operator flag --ambient-identity-namespace, chart value tenancy.ambientIdentity.namespaces); "
            "reference a Secret with credentials instead, or ask the admin")


def ambient_unprobed_message(spec: ConnectionSpec) -> str:
    return (f"not probed: uses {ambient_identity(spec)} of each run's ServiceAccount (spec.job.serviceAccountName "
            "of the Integration); the operator does not probe with its own identity (chart value "
            "tenancy.ambientIdentity.probe), so the first run is the check")


def secret_refusal(secret: Mapping[str, Any], policy: TenancyPolicy) -> str | None:
    """Why the Secret object ``secret`` (as the API returns it) may not be used, or None."""
    meta = secret.get("metadata") or {}
    name = meta.get("name", "")
    if secret.get("type") == SERVICE_ACCOUNT_TOKEN:
        return (f"Secret {name!r} is a service-account token (type {SERVICE_ACCOUNT_TOKEN}): the operator never "
                "sends cluster identities to other systems; put the provider's credentials in an Opaque Secret")
    if policy.secret_label is not None:
        key, value = policy.secret_label
        if (meta.get("labels") or {}).get(key) != value:
            return (f"Secret {name!r} lacks the label {key}={value} the cluster admin requires on Secrets the operator "
                    "may use (chart value tenancy.secretLabel): add the label to the Secret")
    return None
