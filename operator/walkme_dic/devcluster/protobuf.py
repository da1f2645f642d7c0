"""Decoding of the Kubernetes protobuf request bodies kubectl sends for the kinds it builds itself.

``kubectl create namespace|secret|configmap`` send ``application/vnd.kubernetes.protobuf`` and
client-go 1.33 does not fall back to JSON on a 415, so those three kinds are decoded here: the
``k8s\\x00`` magic, a ``runtime.Unknown`` envelope (typeMeta, raw), and the object message with the
field numbers of k8s.io/api's generated.proto. Empty strings and zero numbers are dropped, as JSON's
omitempty would. Any other kind (a Job from ``kubectl create job``…) is refused with 415, so the
caller sees it is not served rather than a half-decoded object.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"
# message name -> field number -> (json name, wire kind)
# kinds: str, bytes (base64 in JSON), int, bool, map (string values), bytesmap (base64 values),
#        strings (repeated string), or the name of a nested message (prefix "*" when repeated)
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "str"),
                4: ("contentType", "str")},
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 5: ("uid", "str"),
                   6: ("resourceVersion", "str"), 7: ("generation", "int"), 11: ("labels", "map"),
                   12: ("annotations", "map"), 13: ("ownerReferences", "*OwnerReference"),
                   14: ("finalizers", "strings")},
    "OwnerReference": {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"), 5: ("apiVersion", "str"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "strings")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bytesmap"), 3: ("type", "str"),
               4: ("stringData", "map"), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bytesmap"),
                  4: ("immutable", "bool")},
}
DECODED_KINDS = frozenset({("v1", "Namespace"), ("v1", "Secret"), ("v1", "ConfigMap")})


class UnsupportedKind(ValueError):
    """A protobuf body of a kind this server does not decode."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint or length-delimited bytes) in wire order; fixed-width fields are skipped."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos:pos + size]))
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")
    return out


def _bytes(value: int | bytes | None) -> bytes:
    return value if isinstance(value, bytes) else b""


def _message(data: bytes, name: str) -> dict[str, Any]:
    table = MESSAGES[name]
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in table:
            continue
        key, kind = table[number]
        if kind in ("map", "bytesmap"):
            entry = dict(_fields(_bytes(value)))
            raw = _bytes(entry.get(2))
            result.setdefault(key, {})[_bytes(entry.get(1)).decode()] = \
                base64.b64encode(raw).decode() if kind == "bytesmap" else raw.decode()
        elif kind == "strings":
            result.setdefault(key, []).append(_bytes(value).decode())
        elif kind.startswith("*"):
            result.setdefault(key, []).append(_message(_bytes(value), kind[1:]))
        elif kind == "str":
            if value:
                result[key] = _bytes(value).decode()
        elif kind == "bytes":
            result[key] = _bytes(value)
        elif kind in ("int", "bool"):
            if value:
                result[key] = bool(value) if kind == "bool" else value
        else:
            nested = _message(_bytes(value), kind)
            if nested:
                result[key] = nested
    return result


def decode(body: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf body as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise ValueError("a protobuf body must start with the k8s magic bytes")
    envelope = _message(body[len(MAGIC):], "Unknown")
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if (api_version, kind) not in DECODED_KINDS:
        raise UnsupportedKind(f"{api_version} {kind}")
    return {"apiVersion": api_version, "kind": kind, **_message(envelope.get("raw", b""), kind)}
