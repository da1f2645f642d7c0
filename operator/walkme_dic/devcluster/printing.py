"""Server-side `Table` rendering (what `kubectl get` asks for), from additionalPrinterColumns."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from walkme_dic.devcluster.emulator import ResourceType

_FILTER = re.compile(r'^\[\?\(@\.([\w.]+)\s*==\s*["\']([^"\']*)["\']\)\]')
_INDEX = re.compile(r"^\[(\d+)\]")
_FIELD = re.compile(r"^\.?([\w-]+)")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    current: list[Any] = [obj]
    rest = path.strip()
    while rest:
        if match := _FILTER.match(rest):
            field, wanted = match.groups()
            current = [item for value in current if isinstance(value, list) for item in value
                       if isinstance(item, dict) and str(jsonpath(item, "." + field)) == wanted]
        elif match := _INDEX.match(rest):
            index = int(match.group(1))
            current = [v[index] for v in current if isinstance(v, list) and len(v) > index]
        elif match := _FIELD.match(rest):
            current = [v[match.group(1)] for v in current if isinstance(v, dict) and match.group(1) in v]
        else:
            return None
        rest = rest[match.end():]
    return current[0] if current else None


def age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "<unknown>"
    seconds = int((now - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def columns_for(rtype: ResourceType) -> list[dict[str, Any]]:
    columns = [{"name": "Name", "type": "string", "format": "name", "jsonPath": ".metadata.name"}]
    columns += list(rtype.printer_columns)
    if not any(c.get("name", "").upper() == "AGE" for c in columns):
        columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return columns


def render_table(rtype: ResourceType, items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    columns = columns_for(rtype)
    rows = []
    for obj in items:
        cells = []
        for column in columns:
            value = jsonpath(obj, column["jsonPath"])
            if column.get("type") == "date":
                value = age(value, now) if value else "<none>"
            cells.append("<none>" if value is None else value)
        rows.append({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                "metadata": obj.get("metadata", {})}})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": ""},
        "columnDefinitions": [
            {"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
             "description": c.get("description", ""), "priority": c.get("priority", 0)}
            for c in columns
        ],
        "rows": rows,
    }
