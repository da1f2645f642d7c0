"""RFC 6902 JSON patch (``kubectl patch --type=json``): add, remove, replace, move, copy, test.

Paths are RFC 6901 JSON pointers (``~1`` is ``/``, ``~0`` is ``~``; ``-`` appends to a list). A patch
applies completely or not at all: any failing operation raises :class:`JSONPatchError`, which the
API server answers with 422 (a failed ``test``) or 400.
"""

from __future__ import annotations

import copy
from typing import Any


class JSONPatchError(ValueError):
    def __init__(self, message: str, *, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise JSONPatchError(f"path {pointer!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise JSONPatchError("the whole document cannot be patched")
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdecimal() and int(token) < len(node):
        return node[int(token)]
    raise JSONPatchError(f"path {pointer!r} does not exist")


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _child(node, token, pointer)
    return node


def _add(doc: Any, pointer: str, value: Any) -> None:
    parent, key = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        index = len(parent) if key == "-" else int(key) if key.isdecimal() else -1
        if not 0 <= index <= len(parent):
            raise JSONPatchError(f"path {pointer!r}: index out of range")
        parent.insert(index, value)
    else:
        raise JSONPatchError(f"path {pointer!r}: parent is not an object or a list")


def _remove(doc: Any, pointer: str) -> Any:
    parent, key = _parent(doc, pointer)
    found = _child(parent, key, pointer)
    if isinstance(parent, dict):
        del parent[key]
    else:
        del parent[int(key)]
    return found


def apply_json_patch(document: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """A patched deep copy of ``document``."""
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise JSONPatchError(f"each operation needs 'op' and 'path': {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise JSONPatchError(f"{op} {path}: missing 'value'")
        if op == "add":
            _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(doc, path)
        elif op == "replace":
            _remove(doc, path)
            _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "move":
            _add(doc, path, _remove(doc, operation.get("from", "")))
        elif op == "copy":
            _add(doc, path, copy.deepcopy(_get(doc, operation.get("from", ""))))
        elif op == "test":
            if _get(doc, path) != operation["value"]:
                raise JSONPatchError(f"testing value {path} failed", test_failed=True)
        else:
            raise JSONPatchError(f"unknown operation {op!r}")
    return doc
