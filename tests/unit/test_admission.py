"""The dev cluster admits our custom resources as the API server would: prune, default, schema, CEL.

Every x-kubernetes-validations rule in the generated CRDs must have a case here (an object it
accepts and one it refuses); a new rule without a case fails `test_every_rule_in_the_crds_has_a_case`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.manifests import load_documents
from walkme_dic.devcluster.admission import (
    AdmissionError,
    admit,
    check_rules_compile,
    prune,
    rules_in,
    validate_schema,
)
from walkme_dic.devcluster.cluster import load_crds

ROOT = Path(__file__).resolve().parents[2]
API = "integrations.walkme.io/v1alpha1"
GROUP = "integrations.walkme.io"
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in load_crds()}
SCHEMAS = {kind: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for kind, crd in CRDS.items()}

WALKME = {"walkme": {"apiUrl": "https://api.walkme.com", "auth": {"secretRef": {"name": "walkme-api"}}}}
S3 = {"s3": {"bucket": "lake", "region": "us-east-1", "auth": {"secretRef": {"name": "aws"}}}}
FILE = {"file": {"path": "users.csv"}}
WALKME_DEST = {"walkme": {"integrationTokenSecretRef": {"name": "tok", "key": "token"}, "userIdProperty": "uuid"}}
INBOUND = {
    "direction": "Inbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
    "source": FILE, "destination": WALKME_DEST, "mapping": {"key": {"source": "id", "destination": "uuid"}},
}
OUTBOUND = {**INBOUND, "direction": "Outbound", "source": {"walkme": {"dataset": "users"}},
            "destination": {"file": {"path": "out/users.csv"}}}


def obj(kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": "ns"}, "spec": copy.deepcopy(spec)}


def run(kind: str, spec: dict[str, Any], old_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    old = obj(kind, old_spec) if old_spec is not None else None
    return admit(kind, GROUP, SCHEMAS[kind], obj(kind, spec), old).obj


def refusal(kind: str, spec: dict[str, Any], old_spec: dict[str, Any] | None = None) -> AdmissionError:
    with pytest.raises(AdmissionError) as error:
        run(kind, spec, old_spec)
    return error.value


BOOLEAN_FIELD = {"source": "is_customer", "destination": "isCustomer", "type": "boolean"}


def fields(count: int) -> list[dict[str, str]]:
    return [{"source": f"c{i}", "destination": f"a{i}"} for i in range(count)]


@dataclass(frozen=True)
class RuleCase:
    """An accepted and a refused spec for one rule (``old`` set: an update from that spec)."""

    accepted: dict[str, Any]
    refused: dict[str, Any]
    old: dict[str, Any] | None = None
    rule: str = ""  # part of the rule's message, where one path carries several rules


RULE_CASES: dict[tuple[str, str], list[RuleCase]] = {
    ("Connection", "spec"): [
        RuleCase(accepted=WALKME, refused={**WALKME, **S3}),
        RuleCase(accepted=S3, refused={"probeInterval": "10m"}),
    ],
    ("Integration", "spec.connectionRef"): [
        RuleCase(accepted={**INBOUND, "suspend": True}, refused={**INBOUND, "connectionRef": {"name": "other"}},
                 old=INBOUND),
    ],
    ("Integration", "spec.source"): [
        RuleCase(accepted=INBOUND, refused={**INBOUND, "source": {**FILE, "salesforce": {"soql": "SELECT Id"}}}),
        RuleCase(accepted=OUTBOUND, refused={**INBOUND, "source": {}}),
    ],
    ("Integration", "spec.destination"): [
        RuleCase(accepted=INBOUND, refused={**INBOUND, "destination": {**WALKME_DEST, **FILE}}),
        RuleCase(accepted={**OUTBOUND, "destination": {"webhook": {"batchSize": 50}}},
                 refused={**OUTBOUND, "destination": {"webhook": {"batchSize": 50}, **FILE}}),
    ],
    ("Integration", "spec"): [
        RuleCase(accepted=OUTBOUND, refused={**OUTBOUND, "direction": "Inbound"}, rule="Inbound integrations read"),
        RuleCase(accepted=INBOUND, refused={**INBOUND, "direction": "Outbound"}, rule="Inbound integrations read"),
        RuleCase(accepted={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": fields(99)}},
                 refused={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": fields(100)}},
                 rule="at most 100 properties"),
        RuleCase(accepted={**OUTBOUND, "mapping": {**OUTBOUND["mapping"], "fields": [BOOLEAN_FIELD]}},
                 refused={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": [BOOLEAN_FIELD]}},
                 rule="String, Number or Date"),
    ],
}


def crd_rules() -> list[tuple[str, str, dict[str, Any]]]:
    return [(kind, path, rule) for kind, schema in SCHEMAS.items() for path, rule in rules_in(schema)]


def test_every_rule_in_the_crds_has_a_case() -> None:
    rules = {(kind, path) for kind, path, _ in crd_rules()}
    missing = sorted(rules - set(RULE_CASES))
    assert not missing, f"x-kubernetes-validations rules without a case in RULE_CASES: {missing}"
    assert not set(RULE_CASES) - rules, f"cases for rules that no longer exist: {sorted(set(RULE_CASES) - rules)}"


def test_every_rule_compiles() -> None:
    for schema in SCHEMAS.values():
        check_rules_compile(schema)


@pytest.mark.parametrize(("kind", "path", "rule"), crd_rules(), ids=lambda v: v if isinstance(v, str) else "")
def test_rule_accepts_and_refuses_with_its_message(kind: str, path: str, rule: dict[str, Any]) -> None:
    cases = [case for (k, p), listed in RULE_CASES.items() if (k, p) == (kind, path) for case in listed
             if case.rule in rule["message"]]
    assert cases, f"no case for the rule at {kind} {path}"
    for case in cases:
        run(kind, case.accepted, case.old)
        error = refusal(kind, case.refused, case.old)
        assert [(e.path, e.detail) for e in error.errors] == [(path, f'Invalid value: "object": {rule["message"]}')], \
            "the refused object must fail on this rule alone"
        assert str(error) == f'{kind}.{GROUP} "x" is invalid: {path}: Invalid value: "object": {rule["message"]}'


def test_transition_rules_do_not_run_on_create() -> None:
    run("Integration", {**INBOUND, "connectionRef": {"name": "anything"}})


def test_refusal_is_the_api_servers_status() -> None:
    status = refusal("Integration", {**INBOUND, "connectionRef": {"name": "other"}}, INBOUND).status()
    assert (status["code"], status["reason"], status["status"]) == (422, "Invalid", "Failure")
    assert status["details"]["kind"] == "Integration" and status["details"]["group"] == GROUP
    assert status["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.connectionRef",
        "message": 'Invalid value: "object": connectionRef cannot be changed after creation; create a new Integration'}]


def test_schema_errors_are_worded_like_the_api_server() -> None:
    spec = {**INBOUND, "direction": "Sideways", "maxRejectedPercent": "lots"}
    del spec["mapping"]
    messages = [e.message for e in refusal("Integration", spec).errors]
    assert 'spec.direction: Unsupported value: "Sideways": supported values: "Inbound", "Outbound"' in messages
    assert "spec.mapping: Required value" in messages
    assert any(m.startswith('spec.maxRejectedPercent: Invalid value: "string": spec.maxRejectedPercent in body '
                            "must be of type") for m in messages)
    assert str(refusal("Integration", spec)).count(", ") >= 2, "several causes are listed in brackets"


def test_type_errors_skip_cel_rules_like_the_api_server() -> None:
    errors = refusal("Integration", {**INBOUND, "source": "users.csv"}).errors
    assert [e.reason for e in errors] == ["FieldValueTypeInvalid"]


def test_unknown_fields_are_pruned_and_reported() -> None:
    admitted = admit("Integration", GROUP, SCHEMAS["Integration"],
                     obj("Integration", {**INBOUND, "bogus": 1, "source": {"file": {"path": "a.csv", "typo": 2}}}),
                     None)
    assert sorted(admitted.pruned) == ["spec.bogus", "spec.source.file.typo"]
    assert "bogus" not in admitted.obj["spec"] and "typo" not in admitted.obj["spec"]["source"]["file"]
    assert admitted.obj["metadata"] == {"name": "x", "namespace": "ns"}, "metadata is not pruned"


def test_defaults_from_the_schema_are_filled_in() -> None:
    stored = run("Integration", INBOUND)
    file_schema = SCHEMAS["Integration"]["properties"]["spec"]["properties"]["source"]["properties"]["file"]
    defaults = {k: v["default"] for k, v in file_schema["properties"].items() if "default" in v}
    assert defaults, "the file source declares defaults"
    assert {k: stored["spec"]["source"]["file"][k] for k in defaults} == defaults


def defaults_in(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)] if "default" in schema else []
    for key, sub in (schema.get("properties") or {}).items():
        found += defaults_in(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), dict):
        found += defaults_in(schema["items"], path + "[*]")
    return found


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_default_in_the_crds_is_valid_and_survives_pruning(kind: str) -> None:
    """The API server refuses a CRD whose defaults fail their schema or would be pruned."""
    found = defaults_in(SCHEMAS[kind])
    assert found, f"{kind} declares no defaults"
    for path, node in found:
        assert validate_schema(node["default"], node, path) == [], f"{kind} {path}: default fails its schema"
        dropped: list[str] = []
        prune(copy.deepcopy(node["default"]), node, path, dropped)
        assert dropped == [], f"{kind} {path}: default has unknown fields {dropped}"


EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_is_admitted(path: Path) -> None:
    for document in load_documents(path):
        if document["kind"] in SCHEMAS:
            admitted = admit(document["kind"], GROUP, SCHEMAS[document["kind"]], document, None)
            assert admitted.pruned == [], f"{path.name}: unknown fields {admitted.pruned}"


def test_rules_are_not_rerun_on_unchanged_values() -> None:
    """Ratcheting: an object stored before a rule existed still takes status writes."""
    broken = {**INBOUND, "source": {**FILE, "salesforce": {"soql": "SELECT Id"}}}
    stored = admit("Integration", GROUP, SCHEMAS["Integration"], obj("Integration", broken), None, rules=False).obj
    with_status = {**copy.deepcopy(stored), "status": {"activeRun": "r1"}}
    assert admit("Integration", GROUP, SCHEMAS["Integration"], with_status, stored).obj["status"] == {"activeRun": "r1"}
    suspended = copy.deepcopy(stored)
    suspended["spec"]["suspend"] = True  # the source's rule looks at an unchanged value: still ratcheted
    admit("Integration", GROUP, SCHEMAS["Integration"], suspended, stored)
    moved = copy.deepcopy(stored)
    moved["spec"]["source"]["file"]["path"] = "other.csv"  # the source changed: its rule runs again
    with pytest.raises(AdmissionError):
        admit("Integration", GROUP, SCHEMAS["Integration"], moved, stored)
