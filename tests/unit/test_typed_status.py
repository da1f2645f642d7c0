"""Status is typed: the planner and the handlers read and write it through api/ models, never by dict key.

The controllers parse status once (IntegrationStatus / ConnectionStatus.model_validate) and write it once
(controllers.common.status_patch); in between, planning/ and controllers/ use the models' attributes.
A status key spelled as a string there (``status.get("activeRun")``, ``["conditions"]``,
``{"lastProbeTime": …}``) would bypass the models, so this test finds them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from tests.unit.test_integration_plan import NOW, REQUESTED_AT, run_plan, settle, view, wire
from walkme_dic.api.common import StatusModel
from walkme_dic.api.connection import ConnectionStatus
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.controllers.common import status_patch

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "walkme_dic"
TYPED = (PACKAGE / "planning", PACKAGE / "controllers")
# one-word keys that only status has; other one-word ones (name, type, reason, message, …) name fields of
# Jobs, Pods, owner references and Events too, which the controllers read as the API gives them
STATUS_WORDS = ("conditions", "runs", "watermark", "queued")
DICT_ACCESS = re.compile(r"""\bstatus\w*\s*(?:\[|\.(?:get|setdefault|pop)\()\s*["']""")


def status_models(annotation: object) -> Iterator[type[StatusModel]]:
    """The status models ``annotation`` is or holds (list[RunRecord], QueuedRun | None, …), and theirs."""
    if isinstance(annotation, type) and issubclass(annotation, StatusModel):
        yield annotation
        for info in annotation.model_fields.values():
            yield from status_models(info.annotation)
    for arg in get_args(annotation):
        yield from status_models(arg)


def status_keys() -> set[str]:
    """The camelCase names of the status fields (nested ones too) that only status has."""
    models = {*status_models(IntegrationStatus), *status_models(ConnectionStatus)}
    aliases = {info.alias or name for model in models for name, info in model.model_fields.items()}
    return {alias for alias in aliases if alias != alias.lower()}


KEYS = status_keys()
SPELLED = re.compile(r"""["'](""" + "|".join(sorted(KEYS)) + r""")["']""")
WORD_ACCESS = re.compile(r"""(?:\[|\.(?:get|setdefault|pop)\()\s*["'](""" + "|".join(STATUS_WORDS) + r""")["']""")


def status_keys_in(line: str) -> list[str]:
    """The status keys ``line`` spells as strings (empty when it reads status through the models)."""
    found = [match.group(0) for match in DICT_ACCESS.finditer(line)]
    return found + SPELLED.findall(line) + WORD_ACCESS.findall(line)


def test_the_key_list_holds_the_status_fields() -> None:
    assert {"observedGeneration", "activeRun", "lastProbeTime", "lastTransitionTime", "rowsRead",
            "restorePatch", "identityHistory"} <= KEYS


@pytest.mark.parametrize("line", [
    'if view.status.get("observedGeneration") != view.generation:',
    'status["watermark"] = result.watermark',
    'ready = find_condition(status.get("conditions"), "Ready") or {}',
    'conditions = set_condition(old["conditions"], reasons.READY, "False", reason, message)',
    'return {**new, "lastProbeTime": previous.last_probe_time}',
    'kept = {r["name"] for r in body.get("runs", [])}',
    'old_status.setdefault("boundConnection", name)',
])
def test_a_status_key_spelled_as_a_string_is_found(line: str) -> None:
    assert status_keys_in(line)


@pytest.mark.parametrize("line", [
    "if view.status.observed_generation != view.generation:",
    "status = IntegrationStatus.model_validate(body.get(\"status\") or {})",
    'owner = next(o["name"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "Integration")',
    'refs = {(spec.get(ref) or {}).get("name") for ref in ("connectionRef", "walkmeConnectionRef")}',
    'message = f"the previous one is kept in status.identityHistory"',
])
def test_typed_access_is_not_flagged(line: str) -> None:
    assert status_keys_in(line) == []


def test_planning_and_controllers_spell_no_status_keys() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for folder in TYPED for path in sorted(folder.glob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1) if status_keys_in(line)]
    assert found == [], "read and write status through the api/ models:\n" + "\n".join(found)


def test_a_field_the_plan_clears_is_null_in_the_patch() -> None:
    """queued: set while a run waited for a cap; the next plan clears it, and the merge patch removes it."""
    stored = {**settle(view(), NOW), "queued": {"trigger": "Schedule", "message": "queued: 2 runs are going"}}
    before = view(status=stored).status
    decision = run_plan(view(status=before))
    assert decision.status_changed and decision.status.queued is None
    patch = status_patch(before, decision.status)["status"]
    assert patch["queued"] is None and patch["observedGeneration"] == 1


def test_a_field_of_another_version_is_kept_and_an_unchanged_status_is_not_written() -> None:
    stored = {**settle(view(), NOW), "lastRunTime": "2026-11-25T10:07:00Z"}
    again = run_plan(view(status=stored))
    assert not again.status_changed, "re-planning the stored status changes nothing: no write"
    assert wire(again.status)["lastRunTime"] == "2026-11-25T10:07:00Z"
    asked = run_plan(view(status=stored, annotations={REQUESTED_AT: "now"}))
    patch = status_patch(view(status=stored).status, asked.status)["status"]
    assert asked.status_changed and patch["lastRunTime"] == "2026-11-25T10:07:00Z"
    assert [k for k, v in patch.items() if v is None] == []
