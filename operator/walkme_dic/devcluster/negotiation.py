"""Content negotiation of the dev API server: JSON (and YAML request bodies) only.

Answers are always JSON: kubectl accepts ``protobuf,json`` and takes the JSON; an ``Accept``
that names no JSON form at all gets 406 Not Acceptable, as from a server without protobuf.
Request bodies: kubectl's typed clients send protobuf (``kubectl create namespace|secret|
configmap``) and client-go 1.33 does not re-send as JSON after a 415, so those kinds are decoded
(:mod:`walkme_dic.devcluster.protobuf`); other protobuf kinds and CBOR get 415 Unsupported Media
Type. ``application/apply-patch+yaml`` (server-side apply) and ``…yaml`` bodies are parsed as YAML,
everything else as JSON; a JSON patch body is a list of operations, every other body an object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from walkme_dic.devcluster import protobuf

APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
UNSUPPORTED = ("application/cbor",)
UNSUPPORTED_MESSAGE = ("the body of the request was in an unknown format - accepted media types include: "
                       "application/json, application/yaml, application/vnd.kubernetes.protobuf (Namespace, Secret, "
                       f"ConfigMap), {APPLY_PATCH}, application/merge-patch+json")
JSON_ACCEPTS = ("application/json", "*/*", "application/*", "application/yaml")


def accepts_json(headers: Mapping[str, str]) -> bool:
    accept = headers.get("Accept", "")
    return not accept or any(kind in accept for kind in JSON_ACCEPTS)


def refusal(headers: Mapping[str, str]) -> tuple[int, str, str] | None:
    """(code, reason, message) when the request's body or wanted answer is in a format not served."""
    content_type = headers.get("Content-Type", "")
    if any(content_type.startswith(kind) for kind in UNSUPPORTED):
        return 415, "UnsupportedMediaType", UNSUPPORTED_MESSAGE
    if not accepts_json(headers):
        return 406, "NotAcceptable", "only the following media types are accepted: application/json, application/yaml"
    return None


def decode_body(raw: bytes, content_type: str) -> dict[str, Any] | list[Any]:
    """The request body: a list of operations for a JSON patch, else an object ({} when empty).

    ValueError when it does not parse or has the wrong shape (a 400 upstream).

    A protobuf body of a kind not decoded raises :class:`protobuf.UnsupportedKind` (a 415).
    """
    if content_type.startswith(PROTOBUF):
        return protobuf.decode(raw)
    if not raw.strip():
        return {}
    try:
        decoded = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"the request body could not be decoded: {error}") from error
    if JSON_PATCH in content_type:
        if not isinstance(decoded, list):
            raise ValueError("a JSON patch must be a list of operations")
        return decoded
    if not isinstance(decoded, dict):
        raise ValueError("the request body must be an object")
    return decoded
