"""Deterministic run (= Job) names and the labels that tie Jobs to their Integration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from walkme_dic.api.common import GROUP
from walkme_dic.api.integration import RunTrigger

MANAGED_BY = "walkme-dic"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INTEGRATION = f"{GROUP}/integration"
LABEL_RUN = f"{GROUP}/run"
ANNOTATION_TRIGGER = f"{GROUP}/trigger"
ANNOTATION_SLOT = f"{GROUP}/slot"
ANNOTATION_GENERATION = f"{GROUP}/generation"
ANNOTATION_REQUESTED_AT = f"{GROUP}/requested-at"
ANNOTATION_FULL_RESYNC = f"{GROUP}/full-resync"
MAX_NAME = 63


@dataclass(frozen=True)
class RunKey:
    """What makes a run unique: the trigger and its token (generation, slot or requested-at value)."""

    trigger: RunTrigger
    token: str

    def suffix(self) -> str:
        if self.trigger == "Schedule":
            return "s" + self.token
        if self.trigger in ("Created", "SpecChanged"):
            return "g" + self.token
        return "r" + hashlib.sha256(self.token.encode()).hexdigest()[:8]


def schedule_key(slot: datetime) -> RunKey:
    return RunKey("Schedule", slot.strftime("%Y%m%d%H%M"))


def generation_key(generation: int, *, created: bool) -> RunKey:
    return RunKey("Created" if created else "SpecChanged", str(generation))


def requested_key(value: str) -> RunKey:
    return RunKey("Requested", value)


def run_name(integration: str, uid: str, key: RunKey) -> str:
    """`<integration>-<uid5>-<suffix>`: stable across operator restarts, unique per Integration object."""
    uid_part = hashlib.sha256(uid.encode()).hexdigest()[:5]
    suffix = f"{uid_part}-{key.suffix()}"
    base = integration[: MAX_NAME - len(suffix) - 1].rstrip("-.")
    return f"{base}-{suffix}"


def run_labels(integration: str, run: str) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "sync",
        LABEL_INTEGRATION: integration[:63].rstrip("-."),
        LABEL_RUN: run,
    }
