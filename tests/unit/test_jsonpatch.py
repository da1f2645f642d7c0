"""RFC 6902 JSON patch as the dev cluster applies it for `kubectl patch --type=json`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from walkme_dic.devcluster.jsonpatch import JSONPatchError, apply_json_patch

DOC = {"metadata": {"labels": {"a/b": "1"}}, "spec": {"list": [1, 2], "x": {"y": "z"}}}


@pytest.mark.parametrize(("operations", "expected"), [
    ([{"op": "add", "path": "/spec/new", "value": 3}], {**DOC, "spec": {**DOC["spec"], "new": 3}}),
    ([{"op": "add", "path": "/spec/list/-", "value": 3}], {**DOC, "spec": {**DOC["spec"], "list": [1, 2, 3]}}),
    ([{"op": "add", "path": "/spec/list/0", "value": 0}], {**DOC, "spec": {**DOC["spec"], "list": [0, 1, 2]}}),
    ([{"op": "remove", "path": "/metadata/labels/a~1b"}], {**DOC, "metadata": {"labels": {}}}),
    ([{"op": "replace", "path": "/spec/x/y", "value": "w"}], {**DOC, "spec": {**DOC["spec"], "x": {"y": "w"}}}),
    ([{"op": "move", "from": "/spec/x", "path": "/spec/moved"}],
     {**DOC, "spec": {"list": [1, 2], "moved": {"y": "z"}}}),
    ([{"op": "copy", "from": "/spec/x", "path": "/spec/copy"}],
     {**DOC, "spec": {**DOC["spec"], "copy": {"y": "z"}}}),
    ([{"op": "test", "path": "/spec/x/y", "value": "z"}], DOC),
])
def test_operations(operations: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert apply_json_patch(DOC, operations) == expected


@pytest.mark.parametrize("operations", [
    [{"op": "remove", "path": "/spec/missing"}],
    [{"op": "replace", "path": "/nope/deeper", "value": 1}],
    [{"op": "add", "path": "/spec/list/9", "value": 1}],
    [{"op": "test", "path": "/spec/x/y", "value": "other"}],
    [{"op": "frobnicate", "path": "/spec"}],
    [{"path": "/spec"}],
    [{"op": "add", "path": "spec/x", "value": 1}],
    [{"op": "add", "path": "/spec/ok", "value": 1}, {"op": "remove", "path": "/spec/missing"}],
])
def test_a_failing_operation_leaves_the_document_unchanged(operations: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(DOC)
    with pytest.raises(JSONPatchError):
        apply_json_patch(DOC, operations)
    assert before == DOC
