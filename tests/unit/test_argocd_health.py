"""docs/argocd-health.lua, run by Lua 5.1 (Argo CD's gopher-lua dialect) through lupa.

Connection statuses come from the operator's own connection_status(); Integration statuses
are the condition sets integrations._set_conditions writes for each situation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from walkme_dic.api.connection import ConnectionSpec, ConnectionStatus
from walkme_dic.planning.connection import ProbeOutcome, connection_status, probing_status

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (a Lua runtime from PyPI) is not installed")

SCRIPT = (Path(__file__).resolve().parents[2] / "docs" / "argocd-health.lua").read_text()
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the health script the way Argo CD does: ``obj`` global, the script returns ``hs``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    hs = runtime.execute(SCRIPT)
    return hs["status"], hs["message"]


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2025-01-01T12:00:00Z", "observedGeneration": 3}


def integration(*conditions: dict[str, Any], observed: int = 3, generation: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "integrations.walkme.io/v1alpha1",
        "kind": "Integration",
        "metadata": {"name": "crm-users", "namespace": "team-a", "generation": generation},
        "spec": {"direction": "Inbound", "connectionRef": {"name": "s3"}},
        "status": {"observedGeneration": observed, "conditions": list(conditions)},
    }


def connection(outcome: ProbeOutcome, *, stalled: bool = False) -> dict[str, Any]:
    status = connection_status(None, outcome, previous=ConnectionStatus(), generation=2, secret_version="1", now=NOW,
                               stalled=stalled).to_wire()
    return {
        "apiVersion": "integrations.walkme.io/v1alpha1",
        "kind": "Connection",
        "metadata": {"name": "s3", "namespace": "team-a", "generation": 2},
        "spec": {"s3": {"bucket": "exports", "region": "eu-west-1"}},
        "status": status,
    }


def test_probed_connection_is_healthy() -> None:
    status, message = health(connection(ProbeOutcome(True, "Probed", "bucket exports reachable")))
    assert (status, message) == ("Healthy", "Probed: bucket exports reachable")


def test_connection_with_failed_probe_is_degraded() -> None:
    status, message = health(connection(ProbeOutcome(False, "AuthenticationFailed", "403 from S3: check the keys")))
    assert status == "Degraded"
    assert message == "AuthenticationFailed: 403 from S3: check the keys"


def test_stalled_connection_is_degraded_with_the_stall_reason() -> None:
    outcome = ProbeOutcome(False, "SecretNotFound", "Secret team-a/s3-keys not found")
    assert health(connection(outcome, stalled=True)) == ("Degraded", "SecretNotFound: Secret team-a/s3-keys not found")


def test_new_object_without_status_is_progressing() -> None:
    obj = integration()
    del obj["status"]
    assert health(obj)[0] == "Progressing"


def test_unobserved_generation_is_progressing_even_if_ready() -> None:
    obj = integration(cond("Ready", "True", "RunSucceeded", "last run: 10 rows"), observed=2, generation=3)
    assert health(obj) == ("Progressing", "Waiting for the operator to observe generation 3")


def test_integration_waiting_for_schedule_is_healthy() -> None:
    obj = integration(
        cond("Ready", "True", "RunSucceeded", "last run: 120 read, 120 written; next run at 2025-01-01T18:00:00Z"),
        cond("Reconciling", "False", "Idle"),
        cond("Stalled", "False", "Idle"),
        cond("Synced", "True", "RunSucceeded", "120 read, 120 written"),
    )
    assert health(obj)[0] == "Healthy"
    assert "next run at" in health(obj)[1]


def test_integration_with_a_run_in_progress_is_progressing() -> None:
    obj = integration(
        cond("Ready", "True", "RunSucceeded", "last run: ok"),
        cond("Reconciling", "True", "RunInProgress", "run crm-users-28930260 is in progress"),
        cond("Stalled", "False", "Idle"),
    )
    assert health(obj) == ("Progressing", "RunInProgress: run crm-users-28930260 is in progress")


def test_integration_waiting_for_its_connection_is_progressing() -> None:
    obj = integration(
        cond("Ready", "False", "ConnectionNotReady", "Connection s3 is not Ready"),
        cond("Reconciling", "True", "ConnectionNotReady", "Connection s3 is not Ready"),
        cond("Stalled", "False", "Idle"),
    )
    assert health(obj)[0] == "Progressing"


def test_integration_whose_last_run_failed_is_degraded() -> None:
    obj = integration(
        cond("Ready", "False", "RunFailed", "37 rows rejected (limit 10)"),
        cond("Reconciling", "False", "Idle"),
        cond("Stalled", "False", "Idle"),
        cond("Synced", "False", "RunFailed", "37 rows rejected (limit 10)"),
    )
    assert health(obj) == ("Degraded", "RunFailed: 37 rows rejected (limit 10)")


def test_stalled_integration_is_degraded() -> None:
    obj = integration(
        cond("Ready", "False", "ConnectionRefImmutable", "spec.connectionRef cannot change"),
        cond("Reconciling", "False", "ConnectionRefImmutable"),
        cond("Stalled", "True", "ConnectionRefImmutable", "spec.connectionRef cannot change"),
    )
    assert health(obj) == ("Degraded", "ConnectionRefImmutable: spec.connectionRef cannot change")


def test_suspended_integration_is_suspended() -> None:
    obj = integration(
        cond("Ready", "True", "Suspended", "suspended: no new runs start"),
        cond("Reconciling", "False", "Idle"),
        cond("Stalled", "False", "Idle"),
    )
    assert health(obj) == ("Suspended", "suspended: no new runs start")


def test_ready_unknown_is_progressing() -> None:
    obj = integration(cond("Ready", "Unknown", "RunInProgress"), cond("Stalled", "False", "Idle"))
    assert health(obj) == ("Progressing", "RunInProgress")


def test_connection_during_its_first_probe_is_progressing() -> None:
    spec = ConnectionSpec.model_validate({"s3": {"bucket": "exports", "region": "eu-west-1"}})
    obj = connection(ProbeOutcome(True, "Probed", "ok"))
    probing = probing_status(spec, previous=ConnectionStatus(), generation=2, now=NOW)
    assert probing is not None
    obj["status"] = probing.to_wire()
    assert health(obj) == ("Progressing", "probing bucket 'exports' at s3.eu-west-1.amazonaws.com")
