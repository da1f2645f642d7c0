"""The CRDs and docs/api.md are generated from the models; these tests catch drift and schema mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from walkme_dic import crdgen

ROOT = Path(__file__).resolve().parents[2]


def test_committed_generated_files_match_the_models(tmp_path: Path) -> None:
    for path, text in crdgen.outputs(ROOT).items():
        assert path.exists(), f"{path.relative_to(ROOT)} is missing; run `walkme-dic crds`"
        assert path.read_text() == text, f"{path.relative_to(ROOT)} drifted from the models; run `walkme-dic crds`"


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1
    assert "crds/integrations.walkme.io_connections.yaml" in capsys.readouterr().err
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 0


def structural_problems(node: dict[str, Any], path: str = "") -> list[str]:
    problems = []
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '<root>'}: no type")
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title", "$defs"):
        if forbidden in node:
            problems.append(f"{path}: {forbidden} is not allowed in a structural schema")
    for name, sub in (node.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}{{}}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}[]")
    if node.get("type") == "object" and "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    return problems


@pytest.mark.parametrize("crd", crdgen.render_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_crds_are_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert structural_problems(schema) == []


def test_crd_names_columns_and_subresources() -> None:
    connection, integration = crdgen.render_crds()
    for crd, short in ((connection, "wmconn"), (integration, "wmint")):
        assert crd["spec"]["names"]["shortNames"] == [short]
        assert crd["spec"]["names"]["categories"] == ["walkme"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}

    def columns(crd: dict[str, Any], wide: bool) -> list[str]:
        return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
                if bool(c.get("priority", 0)) == wide]

    assert columns(connection, wide=False) == ["Type", "Ready", "Reason", "Age"]
    assert columns(connection, wide=True) == ["Last Probe", "Message"]
    assert columns(integration, wide=False) == ["Direction", "Schedule", "Last Run", "Rows", "Ready", "Reason", "Age"]
    assert columns(integration, wide=True) == \
        ["Connection", "Last Result", "Rejected", "Active Run", "Next Run", "Message"]


def test_cel_rules_for_exactly_one_provider_and_immutable_connection() -> None:
    connection, integration = crdgen.render_crds()
    conn_spec = connection["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "size() == 1" in conn_spec["x-kubernetes-validations"][0]["rule"]
    int_spec = integration["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ref_rules = int_spec["properties"]["connectionRef"]["x-kubernetes-validations"]
    assert ref_rules[0]["rule"] == "self == oldSelf"
    assert "cannot be changed" in ref_rules[0]["message"]


def test_schema_keeps_descriptions_enums_defaults_and_patterns() -> None:
    integration = crdgen.render_crds()[1]
    spec = integration["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["direction"]["enum"] == ["Inbound", "Outbound"]
    assert spec["properties"]["runHistoryLimit"]["default"] == 10
    assert spec["properties"]["schedule"]["description"].startswith("Cron schedule")
    file_format = spec["properties"]["source"]["properties"]["file"]["properties"]["format"]
    assert file_format["enum"] == ["csv", "jsonl"] and file_format["default"] == "csv"
    assert set(spec["required"]) >= {"direction", "connectionRef", "source", "mapping"}
    assert "walkmeConnectionRef" not in spec["required"], "optional for exportFiles: a CEL rule requires it elsewhere"
