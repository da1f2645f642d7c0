"""Empty values by policy (spec.mapping.emptyValues, a field's emptyValues): keep leaves the attribute out of
the record, clear sends it as null; the column-by-column path gives the same bytes as Mapper.map."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from tests.unit.manifests import model_error
from tests.unit.test_columns import CELLS, KEYS, by_block, lines, row_by_row
from walkme_dic.api.integration import Mapping
from walkme_dic.sync.columns import ColumnPlan, map_block
from walkme_dic.sync.mapping import Mapper
from walkme_dic.sync.readers import Block

EMPTY = ["", "   ", "\t"]


def mapper(policy: str | None, fields: list[tuple[str, str | None]]) -> Mapper:
    """Fields c0, c1, … of the given (type, own policy), under the mapping's ``policy`` (None: the default)."""
    mapping: dict[str, Any] = {"key": {"source": "id", "destination": "uuid"}, "activeField": "active",
                               "fields": [{"source": f"c{i}", "destination": f"p{i}", "type": kind,
                                           **({"emptyValues": own} if own else {})}
                                          for i, (kind, own) in enumerate(fields)]}
    if policy:
        mapping["emptyValues"] = policy
    return Mapper(Mapping.model_validate(mapping), "uuid")


def test_keep_is_the_default_and_leaves_an_empty_value_out() -> None:
    keep = mapper(None, [("string", None), ("number", None)])
    assert keep.mapping.empty_values == "keep"
    assert keep.map({"id": "u1", "c0": " ", "c1": "", "active": "true"}) == {"uuid": "u1", "active": "true"}


def test_clear_sends_an_empty_value_as_null_whatever_its_type() -> None:
    clear = mapper("clear", [("string", None), ("number", None), ("date", None)])
    assert orjson.dumps(clear.map({"id": "u1", "c0": "", "c1": None, "active": "false"})) == \
        b'{"uuid":"u1","p0":null,"p1":null,"p2":null,"active":"false"}', "an absent field (c2) is empty too"


def test_a_field_overrides_the_mappings_policy() -> None:
    mixed = mapper("clear", [("string", "keep"), ("string", None)])
    assert mixed.map({"id": "u1", "c0": "", "c1": "", "active": "true"}) == {"uuid": "u1", "p1": None, "active": "true"}
    mixed = mapper("keep", [("string", "clear"), ("string", None)])
    assert mixed.map({"id": "u1", "c0": "", "c1": "", "active": "true"}) == {"uuid": "u1", "p0": None, "active": "true"}


def test_an_empty_key_or_active_value_is_rejected_under_either_policy() -> None:
    for policy in ("keep", "clear"):
        plan = mapper(policy, [("string", None)])
        header = ["id", "c0", "active"]
        rows = [["", "x", "true"], ["u2", "x", " "], ["u3", "", "true"]]
        mapped = map_block(plan, Block(header, [2, 3, 4], rows, []))
        assert [number for number, _ in mapped.refused] == [2, 3] and mapped.numbers == [4]


@pytest.mark.parametrize("policy", ["keep", "clear"])
@pytest.mark.parametrize("own", [None, "keep", "clear"])
@pytest.mark.parametrize("empties", [0.0, 0.3, 1.0], ids=lambda share: f"empty-{share}")
def test_a_block_maps_as_its_rows_would_one_by_one(policy: str, own: str | None, empties: float) -> None:
    kinds = ["string", "number", "date", "string"]
    plan = mapper(policy, [(kind, own if i % 2 else None) for i, kind in enumerate(kinds)])
    header = ["active", "c3", "id", "c0", "c2", "c1"]
    assert ColumnPlan.fitting(plan, header) is not None, "the column path must be the one under test"
    rng = random.Random(f"{policy}{own}{empties}")
    types = {f"c{i}": kind for i, kind in enumerate(kinds)}
    for _ in range(5):
        rows = [[rng.choice(EMPTY) if column.startswith("c") and rng.random() < empties else
                 "true" if column == "active" else rng.choice(KEYS[:2]) if column == "id" else
                 CELLS[types[column]][0] for column in header] for _ in range(rng.choice([1, 7, 300]))]
        mapped = map_block(plan, Block(header, list(range(len(rows))), rows, []))
        assert by_block(mapped) == row_by_row(plan, header, rows)
        if empties == 1.0:
            expected = {f"p{i}" for i in range(4) if plan.mapping.clears(plan.fields[i])}
            assert all({k for k, v in orjson.loads(r).items() if v is None} == expected for r in lines(mapped.records))


def test_objects_with_null_empty_or_absent_values_map_as_their_rows_would() -> None:
    plan = mapper("clear", [("string", None), ("number", "keep"), ("date", None)])
    rows: list[Any] = [{"id": "u1", "c0": None, "c1": None, "c2": "", "active": True},
                       {"id": "u2", "active": "true"}, {"id": "u3", "c0": "x", "c1": 3, "c2": "2024-01-01",
                                                        "active": False}]
    mapped = map_block(plan, Block(None, [1, 2, 3], rows, []))
    assert [orjson.loads(r) for r in lines(mapped.records)] == [
        {"uuid": "u1", "p0": None, "p2": None, "active": "true"},
        {"uuid": "u2", "p0": None, "p2": None, "active": "true"},
        {"uuid": "u3", "p0": "x", "p1": 3, "p2": "2024-01-01", "active": "false"}]


OUTBOUND = {"direction": "Outbound", "connectionRef": {"name": "sf"}, "walkmeConnectionRef": {"name": "walkme"},
            "source": {"walkme": {"dataset": "users"}},
            "destination": {"salesforce": {"object": "Contact", "externalIdField": "Ext__c"}},
            "mapping": {"key": {"source": "userId", "destination": "Ext__c"}}}


@pytest.mark.parametrize("mapping", [{"emptyValues": "clear"},
                                     {"fields": [{"source": "a", "destination": "b", "emptyValues": "clear"}]}])
@pytest.mark.parametrize("destination", [{"file": {"path": "users.csv"}}, {"webhook": {"batchSize": 50}}])
def test_clear_on_an_outbound_file_or_webhook_is_refused(mapping: dict[str, Any], destination: dict[str, Any]) -> None:
    spec = {**OUTBOUND, "destination": destination, "mapping": {**OUTBOUND["mapping"], **mapping}}
    error = model_error({"apiVersion": "integrations.walkme.io/v1alpha1", "kind": "Integration",
                         "metadata": {"name": "x", "namespace": "ns"}, "spec": spec})
    assert error is not None and "emptyValues: clear is for Inbound integrations" in error, error


def test_clear_on_an_outbound_integration_to_salesforce_is_accepted() -> None:
    """Salesforce fields can be cleared (tests/connectors/test_salesforce_clearing.py)."""
    spec = {**OUTBOUND, "mapping": {**OUTBOUND["mapping"], "emptyValues": "clear"}}
    assert model_error({"apiVersion": "integrations.walkme.io/v1alpha1", "kind": "Integration",
                        "metadata": {"name": "x", "namespace": "ns"}, "spec": spec}) is None
