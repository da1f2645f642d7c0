"""The one helper that builds status conditions (like meta.SetStatusCondition)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from walkme_dic.errors import without_reason

Status = str  # "True" | "False" | "Unknown"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition_true(status: Mapping[str, Any], type_: str) -> bool:
    """Whether ``status`` holds condition ``type_`` with status "True"."""
    return (find_condition(status.get("conditions"), type_) or {}).get("status") == "True"


def set_condition(
    conditions: Sequence[dict[str, Any]],
    type_: str,
    status: Status,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return conditions with ``type_`` set; lastTransitionTime changes only when status changes.

    The message never starts with the reason again ("NotFound: NotFound: …" reads as noise).
    """
    previous = find_condition(conditions, type_)
    transition = previous["lastTransitionTime"] if previous and previous.get("status") == status else rfc3339(now)
    updated = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": without_reason(reason, message),
        "lastTransitionTime": transition,
        "observedGeneration": generation,
    }
    others = [c for c in conditions if c.get("type") != type_]
    return sorted([*others, updated], key=lambda c: _ORDER.get(c["type"], 99))


def find_condition(conditions: Sequence[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def is_true(conditions: Sequence[dict[str, Any]] | None, type_: str) -> bool:
    found = find_condition(conditions, type_)
    return bool(found and found.get("status") == "True")


_ORDER = {"Ready": 0, "Reconciling": 1, "Stalled": 2, "Synced": 3}
