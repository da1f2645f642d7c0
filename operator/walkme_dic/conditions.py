"""The one helper that builds status conditions (like meta.SetStatusCondition)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from walkme_dic.api.common import Condition, ConditionStatus
from walkme_dic.errors import without_reason


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition_true(conditions: Sequence[Condition], type_: str) -> bool:
    """Whether ``conditions`` hold condition ``type_`` with status "True"."""
    found = find_condition(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return conditions with ``type_`` set; lastTransitionTime changes only when status changes.

    The message never starts with the reason again ("NotFound: NotFound: …" reads as noise).
    """
    previous = find_condition(conditions, type_)
    transition = previous.last_transition_time if previous and previous.status == status else rfc3339(now)
    updated = Condition(type=type_, status=status, reason=reason, message=without_reason(reason, message),
                        last_transition_time=transition, observed_generation=generation)
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: _ORDER.get(c.type, 99))


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


_ORDER = {"Ready": 0, "Reconciling": 1, "Stalled": 2, "Synced": 3}
