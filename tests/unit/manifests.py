"""Validating manifests against the CRD schema (jsonschema, a quick first look; tests/operator/test_admission.py
asks the real API server) and the way the operator does (models)."""

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


def model_error(obj: dict[str, Any]) -> str | None:
    try:
        MODELS[obj["kind"]].model_validate(obj.get("spec") or {})
    except ValidationError as error:
        return str(error)
    return None
