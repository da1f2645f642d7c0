"""Validating manifests the way the API server would (schema) and the operator does (models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from walkme_dic import crdgen
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import IntegrationSpec

MODELS = {"Connection": ConnectionSpec, "Integration": IntegrationSpec}
SCHEMAS = {crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
           for crd in crdgen.render_crds()}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """jsonschema errors against the CRD's openAPIV3Schema (x-kubernetes-* keys are not checked here)."""
    validator = jsonschema.Draft7Validator(SCHEMAS[obj["kind"]])
    return [f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(obj)]


def cel_errors(obj: dict[str, Any]) -> list[str]:
    """Messages of the CRD's spec-level CEL rules (x-kubernetes-validations) the object breaks, evaluated by
    cel-python as the API server would."""
    import celpy

    rules = SCHEMAS[obj["kind"]]["properties"]["spec"].get("x-kubernetes-validations", [])
    environment = celpy.Environment()
    spec = celpy.json_to_cel(obj["spec"])
    return [rule["message"] for rule in rules
            if not environment.program(environment.compile(rule["rule"])).evaluate({"self": spec})]


def model_error(obj: dict[str, Any]) -> str | None:
    try:
        MODELS[obj["kind"]].model_validate(obj.get("spec") or {})
    except ValidationError as error:
        return str(error)
    return None
