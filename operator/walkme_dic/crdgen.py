"""`walkme-dic crds`: render the CRDs and the API reference from the pydantic models.

The models in walkme_dic.api are the single source of truth. This module turns their JSON
schema into structural OpenAPI v3 schemas (refs inlined, optional-null unions flattened),
adds the CEL rules and printer columns, and writes:

* crds/integrations.walkme.io_<plural>.yaml and the identical copies in charts/walkme-dic/crds/;
* docs/api.md, the field reference.

``--check`` writes nothing and exits 1 listing the files that differ (the drift check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from walkme_dic.api.common import CATEGORY, GROUP, VERSION
from walkme_dic.api.connection import PROVIDERS, ConnectionSpec, ConnectionStatus
from walkme_dic.api.integration import (
    COMPRESSION_NAMED,
    DESTINATION_KINDS,
    EMPTY_VALUES_OUTBOUND,
    EXPORT_FILES_NAMED,
    GZIP_SUFFIX,
    MAX_WALKME_PROPERTIES,
    NAMED_SEGMENTS,
    PARENT_SEGMENT,
    SOURCE_KINDS,
    UNDER_THE_CONNECTION,
    WALKME_CONNECTION_NEEDED,
    WALKME_TYPES_MESSAGE,
    IntegrationSpec,
    IntegrationStatus,
)

ROOT = Path(__file__).resolve().parents[2]
KEEP = ("type", "description", "enum", "default", "pattern", "format", "minLength", "maxLength", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "required")

READY_STATUS = '.status.conditions[?(@.type=="Ready")].status'
READY_REASON = '.status.conditions[?(@.type=="Ready")].reason'
READY_MESSAGE = '.status.conditions[?(@.type=="Ready")].message'


def exactly_one_block(side: str, kinds: tuple[str, ...]) -> dict[str, str]:
    """The CEL rule (and its message) that one block of ``kinds`` is set under ``side``."""
    return {"rule": f"[{', '.join(f'has(self.{kind})' for kind in kinds)}].filter(x, x).size() == 1",
            "message": f"set exactly one of {', '.join(f'{side}.{kind}' for kind in kinds)}"}

def under_the_connection(side: str) -> dict[str, str]:
    """The CEL rule that ``side``.file.path has no '..' segment (sftp would leave the Connection's folder)."""
    return {"rule": "!has(self.file) || !self.file.path.matches('(^|/)[.][.](/|$)')",
            "message": f"{side}.file.path: no '{PARENT_SEGMENT}' segment; {UNDER_THE_CONNECTION}"}


def named_segments(side: str) -> dict[str, str]:
    """The CEL rule that every segment of ``side``.file.path is a name (no '.', no empty one)."""
    return {"rule": "!has(self.file) || (self.file.path.matches('^/*[^/]+(/[^/]+)*$') && "
                    "!self.file.path.matches('(^|/)[.](/|$)'))",
            "message": f"{side}.file.path: {NAMED_SEGMENTS}"}


KINDS: dict[str, dict[str, Any]] = {
    "Connection": {
        "plural": "connections",
        "short": ["wmconn"],
        "spec": ConnectionSpec,
        "status": ConnectionStatus,
        "columns": [
            {"name": "Type", "type": "string", "jsonPath": ".status.provider"},
            {"name": "Ready", "type": "string", "jsonPath": READY_STATUS},
            {"name": "Reason", "type": "string", "jsonPath": READY_REASON},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Last Probe", "type": "date", "jsonPath": ".status.lastProbeTime", "priority": 1},
            {"name": "Message", "type": "string", "jsonPath": READY_MESSAGE, "priority": 1},
        ],
        "spec_rules": [{
            "rule": f"[{', '.join(f'has(self.{p})' for p in PROVIDERS)}].filter(x, x).size() == 1",
            "message": f"set exactly one provider block: {', '.join(PROVIDERS[:-1])} or {PROVIDERS[-1]}",
        }],
    },
    "Integration": {
        "plural": "integrations",
        "short": ["wmint"],
        "spec": IntegrationSpec,
        "status": IntegrationStatus,
        "columns": [
            {"name": "Direction", "type": "string", "jsonPath": ".spec.direction"},
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "Last Run", "type": "date", "jsonPath": ".status.runs[0].completionTime"},
            {"name": "Rows", "type": "integer", "jsonPath": ".status.runs[0].rowsWritten"},
            {"name": "Ready", "type": "string", "jsonPath": READY_STATUS},
            {"name": "Reason", "type": "string", "jsonPath": READY_REASON},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Connection", "type": "string", "jsonPath": ".spec.connectionRef.name", "priority": 1},
            {"name": "Last Result", "type": "string", "jsonPath": ".status.lastResult.result", "priority": 1},
            {"name": "Rejected", "type": "integer", "jsonPath": ".status.runs[0].rowsRejected", "priority": 1},
            {"name": "Active Run", "type": "string", "jsonPath": ".status.activeRun", "priority": 1},
            {"name": "Next Run", "type": "string", "jsonPath": ".status.nextScheduleTime", "priority": 1},
            {"name": "Message", "type": "string", "jsonPath": READY_MESSAGE, "priority": 1},
        ],
        "spec_rules": [{
            "rule": "self.direction == 'Inbound' ? (has(self.destination.walkme) && !has(self.source.walkme)) "
                    ": (has(self.source.walkme) && !has(self.destination.walkme))",
            "message": "Inbound integrations read file or salesforce and write walkme; "
                       "Outbound integrations read walkme and write file, salesforce or webhook",
        }, {
            "rule": f"self.direction != 'Inbound' || 1 + (has(self.mapping.fields) ? size(self.mapping.fields) : 0)"
                    f" + (has(self.mapping.activeField) ? 1 : 0) <= {MAX_WALKME_PROPERTIES}",
            "message": f"mapping: WalkMe allows at most {MAX_WALKME_PROPERTIES} properties per account "
                       "(key + fields + activeField); map fewer fields",
        }, {
            "rule": "self.direction != 'Inbound' || !has(self.mapping.fields) || "
                    "self.mapping.fields.all(f, !has(f.type) || (f.type != 'boolean' && f.type != 'timestamp'))",
            "message": f"mapping.fields: {WALKME_TYPES_MESSAGE}",
        }, {
            "rule": "self.direction == 'Inbound' || has(self.destination.salesforce) || "
                    "((!has(self.mapping.emptyValues) || self.mapping.emptyValues == "
                    "'keep') && (!has(self.mapping.fields) || self.mapping.fields.all(f, !has(f.emptyValues) || "
                    "f.emptyValues == 'keep')))",
            "message": EMPTY_VALUES_OUTBOUND,
        }, {
            "rule": "has(self.walkmeConnectionRef) || (has(self.source.walkme) && "
                    "has(self.source.walkme.exportFiles))",
            "message": WALKME_CONNECTION_NEEDED,
        }],
        "field_rules": {
            "connectionRef": [{
                "rule": "self == oldSelf",
                "message": "connectionRef cannot be changed after creation; create a new Integration",
            }],
            "source.walkme.exportFiles.connectionRef": [{
                "rule": "self == oldSelf",
                "message": "source.walkme.exportFiles.connectionRef cannot be changed after creation; create a new "
                           "Integration",
            }],
            "source": [exactly_one_block("source", SOURCE_KINDS), under_the_connection("source"),
                       {"rule": "!has(self.walkme) || (self.walkme.dataset == 'exportFiles') == "
                                "has(self.walkme.exportFiles)", "message": EXPORT_FILES_NAMED},
                       named_segments("source")],
            "destination": [exactly_one_block("destination", DESTINATION_KINDS), under_the_connection("destination"),
                            named_segments("destination"),
                            {"rule": "!has(self.file) || !has(self.file.compression) || self.file.compression == "
                                     f"'auto' || (self.file.compression == 'gzip') == self.file.path.endsWith("
                                     f"'{GZIP_SUFFIX}')",
                             "message": COMPRESSION_NAMED}],
        },
    },
}


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
            return _convert({**options[0], **rest}, defs)
        raise ValueError(f"cannot express a union of {len(options)} types structurally: {node}")
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    out = {k: v for k, v in node.items() if k in KEEP}
    if "enum" in node and "type" not in out:
        out["type"] = "string"
    kind = out.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {name: _convert(sub, defs) for name, sub in node["properties"].items()}
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = _convert(extra, defs)
        elif "properties" not in node:
            out["additionalProperties"] = {"type": "string"}
    if kind == "array":
        out["items"] = _convert(node.get("items", {}), defs)
    if out.get("required") == []:
        out.pop("required")
    return out


def crd_for(kind: str) -> dict[str, Any]:
    info = KINDS[kind]
    spec = structural(info["spec"])
    spec["x-kubernetes-validations"] = info["spec_rules"]
    for field, rules in info.get("field_rules", {}).items():  # a field of spec, or a dotted path below it
        node = spec
        for name in field.split("."):
            node = node["properties"][name]
        node["x-kubernetes-validations"] = rules
    spec["description"] = (info["spec"].__doc__ or "").strip()
    status = structural(info["status"])
    status["description"] = (info["status"].__doc__ or "").strip()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info['plural']}.{GROUP}",
                     "labels": {"app.kubernetes.io/name": "walkme-dic", "app.kubernetes.io/part-of": "walkme-dic"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info["plural"],
                "singular": kind.lower(),
                "shortNames": info["short"],
                "categories": [CATEGORY],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": info["columns"],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": f"{kind} of walkme-dic (WalkMe Data Integration Center as Kubernetes resources).",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status,
                    },
                }},
            }],
        },
    }


def render_crds() -> list[dict[str, Any]]:
    return [crd_for(kind) for kind in KINDS]


def crd_yaml(crd: dict[str, Any]) -> str:
    header = "# Generated by `walkme-dic crds` from operator/walkme_dic/api; do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


def api_reference() -> str:
    lines = ["# API reference", "",
             "Generated by `walkme-dic crds` from `operator/walkme_dic/api`; do not edit.",
             f"Group `{GROUP}`, version `{VERSION}`, category `{CATEGORY}`.", ""]
    for kind, info in KINDS.items():
        lines += [f"## {kind} (`{', '.join(info['short'])}`)", ""]
        for part in ("spec", "status"):
            schema = structural(info[part])
            lines += [f"### {kind}.{part}", "", (info[part].__doc__ or "").strip(), "",
                      "| field | type | required | default | description |", "|---|---|---|---|---|"]
            lines += list(_field_rows(schema, part))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _field_rows(schema: dict[str, Any], path: str) -> Any:
    required = set(schema.get("required", []))
    for name, sub in (schema.get("properties") or {}).items():
        field = f"{path}.{name}"
        kind = sub.get("type", "")
        if kind == "array":
            kind = f"[]{sub.get('items', {}).get('type', '')}"
        if "enum" in sub:
            kind += " (" + " \\| ".join(str(v) for v in sub["enum"]) + ")"
        default = f"`{sub['default']}`" if "default" in sub and sub["default"] not in ({}, []) else ""
        text = (sub.get("description") or "").replace("|", "\\|").replace("\n", " ")
        yield f"| `{field}` | {kind} | {'yes' if name in required else ''} | {default} | {text} |"
        if sub.get("type") == "object" and sub.get("properties"):
            yield from _field_rows(sub, field)
        if sub.get("type") == "array" and sub.get("items", {}).get("properties"):
            yield from _field_rows(sub["items"], field + "[]")


def outputs(root: Path) -> dict[Path, str]:
    files: dict[Path, str] = {}
    for crd in render_crds():
        name = f"{GROUP}_{crd['spec']['names']['plural']}.yaml"
        files[root / "crds" / name] = crd_yaml(crd)
        files[root / "charts" / "walkme-dic" / "crds" / name] = crd_yaml(crd)
    files[root / "docs" / "api.md"] = api_reference()
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="walkme-dic crds", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="Repository root to write into.")
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 when files differ.")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in outputs(args.root).items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            drifted.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(args.root)}")
    if drifted:
        print("generated files are out of date; run `walkme-dic crds`:", file=sys.stderr)
        for path in drifted:
            print(f"  {path.relative_to(args.root)}", file=sys.stderr)
        return 1
    return 0
