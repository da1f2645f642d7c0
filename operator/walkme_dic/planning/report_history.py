"""Report history: what a source or destination points at, and the record kept when a spec change replaces it.

WalkMe's Data Integration Center warns that an Insights report replaced in an integration cannot be
recovered. Here the identity of each side (the saved report id, the dataset, the file path template,
the SOQL query or object) is kept in status; when a spec change replaces it, the old one moves to
status.identityHistory (newest first, bounded) with a JSON merge patch that sets the spec back,
and an Event says so. Pure functions: integrations.plan() calls track_identities().

kopf's stored diff is not reliable (it lives in an annotation that other tools may drop), so the
previous identity is read from status.sourceIdentity / status.destinationIdentity instead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from walkme_dic.api.integration import (
    Destination,
    IdentityChange,
    IntegrationSpec,
    IntegrationStatus,
    SideIdentity,
    Source,
)
from walkme_dic.conditions import rfc3339

IDENTITY_HISTORY_LIMIT = 10
SIDES = ("file", "salesforce", "walkme", "webhook")
# The fields that make a side point at different data; other settings (format, batch size, ...) do not.
IDENTITY_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("source", "file"): ("path",),
    ("source", "salesforce"): ("soql", "object", "fields", "where"),
    ("source", "walkme"): ("dataset", "report_id"),
    ("destination", "file"): ("path",),
    ("destination", "salesforce"): ("object", "external_id_field"),
    ("destination", "walkme"): ("user_id_property", "system", "environment"),
    ("destination", "webhook"): (),  # the URL is the webhook Connection's, and connectionRef cannot change
}


def side_identity(side: str, block: Source | Destination) -> SideIdentity:
    """The identity of one side and the patch that restores it, as status.sourceIdentity / destinationIdentity
    hold it."""
    kind = block.kind
    settings = getattr(block, kind)
    fields = IDENTITY_FIELDS[(side, kind)]
    values = settings.model_dump(by_alias=True, include=set(fields))
    patch = {"spec": {side: {**{other: None for other in SIDES if other != kind}, kind: values}}}
    return SideIdentity(identity=describe(side, kind, settings), restore_patch=json.dumps(patch, separators=(",", ":")))


def describe(side: str, kind: str, settings: Any) -> str:
    if kind == "file":
        return f"file {settings.path!r}"
    if kind == "webhook":
        return "the webhook Connection's URL"
    if kind == "salesforce":
        if side == "source":
            return f"salesforce query {settings.query()!r}"
        return f"salesforce object {settings.object!r}" + (
            f" by {settings.external_id_field!r}" if settings.external_id_field else "")
    if side == "source":
        return f"walkme report {settings.report_id!r}" if settings.dataset == "report" else \
            f"walkme dataset {settings.dataset!r}"
    where = "".join(f" {k} {v!r}" for k, v in (("system", settings.system), ("environment", settings.environment))
                    if v)
    return f"walkme user attributes by {settings.user_id_property!r}{where}"


def track_identities(
    status: IntegrationStatus, spec: IntegrationSpec, name: str, namespace: str, generation: int, now: datetime,
) -> list[tuple[Literal["source", "destination"], str]]:
    """Update status' identities; return (side, Event message) for each side a spec change replaced."""
    source, destination = side_identity("source", spec.source), side_identity("destination", spec.destination)
    sides = (("source", status.source_identity, source), ("destination", status.destination_identity, destination))
    status.source_identity, status.destination_identity = source, destination
    changes: list[tuple[Literal["source", "destination"], str]] = []
    for side, previous, current in sides:
        if previous is None or previous.identity == current.identity:
            continue
        replaced = IdentityChange(side=side, identity=previous.identity, restore_patch=previous.restore_patch,
                                  replaced_by=current.identity, replaced_at=rfc3339(now), generation=generation)
        status.identity_history = [replaced, *(status.identity_history or [])][:IDENTITY_HISTORY_LIMIT]
        changes.append((side, (
            f"spec.{side} changed from {previous.identity} to {current.identity}; the previous one is kept "
            f"in status.identityHistory. To go back: kubectl patch wmint {name} -n {namespace} --type merge "
            f"-p '{previous.restore_patch}'")))
    return changes
