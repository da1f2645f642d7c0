"""Inbound text is held to what WalkMe takes (docs/walkme-api.md, A10): keys of at most 512 characters and no
control characters, values of at most 8192 characters and no control characters but tab and line ends; a row
that breaks one is rejected naming the column and why; both mapping paths alike."""

from __future__ import annotations

import random

import pytest

from tests.unit.test_columns import CELLS, KEYS, by_block, row_by_row
from walkme_dic.api.integration import Mapping
from walkme_dic.sync.columns import ColumnPlan, map_block
from walkme_dic.sync.mapping import MAX_KEY_LENGTH, MAX_VALUE_LENGTH, Mapper, RowError
from walkme_dic.sync.readers import Block

MAPPING = Mapping.model_validate({"key": {"source": "id", "destination": "uuid"},
                                  "fields": [{"source": "plan", "destination": "plan"},
                                             {"source": "seats", "destination": "seats", "type": "number"}]})
INBOUND = Mapper(MAPPING, "uuid", limits=True)


def refusal(values: dict[str, str]) -> str:
    with pytest.raises(RowError) as refused:
        INBOUND.map({"id": "u1", "plan": "gold", "seats": "3", **values})
    return str(refused.value)


def test_a_nul_in_a_value_is_refused_naming_it_and_where() -> None:
    assert refusal({"plan": "go\x00ld"}) == \
        "column 'plan': holds U+0000 NULL at character 3; a value in WalkMe holds no control characters but tab " \
        "and line ends"


def test_a_nul_in_the_key_is_refused() -> None:
    assert refusal({"id": "u\x001"}).startswith("column 'id': holds U+0000 NULL at character 2; a key in WalkMe")


@pytest.mark.parametrize("character", ["\t", "\n", "\r"])
def test_tab_and_line_ends_are_text_in_a_value_but_not_in_a_key(character: str) -> None:
    assert INBOUND.map({"id": "u1", "plan": f"a{character}b", "seats": "3"})["plan"] == f"a{character}b"
    assert "a key in WalkMe holds no control characters" in refusal({"id": f"u{character}1"})


def test_key_and_value_lengths_up_to_the_limit_are_taken() -> None:
    record = INBOUND.map({"id": "k" * MAX_KEY_LENGTH, "plan": "v" * MAX_VALUE_LENGTH, "seats": "1"})
    assert (len(record["uuid"]), len(record["plan"])) == (MAX_KEY_LENGTH, MAX_VALUE_LENGTH)
    assert refusal({"id": "k" * 10_000}) == "column 'id': 10000 characters, more than the 512 a key may have in WalkMe"
    assert refusal({"plan": "v" * (MAX_VALUE_LENGTH + 1)}) == \
        "column 'plan': 8193 characters, more than the 8192 a value may have in WalkMe"


def test_outbound_records_are_not_held_to_walkmes_limits() -> None:
    outbound = Mapper(MAPPING, "uuid")
    assert outbound.map({"id": "k" * 10_000, "plan": "a\x00b"}) == {"uuid": "k" * 10_000, "plan": "a\x00b"}


VALUES = [*CELLS["string"], "\x00", "a\x00b", "\x0b", "\x1b[31m", "v" * MAX_VALUE_LENGTH, "v" * (MAX_VALUE_LENGTH + 1)]
KEY_VALUES = [*KEYS, "u\x00", "u\t1", "k" * MAX_KEY_LENGTH, "k" * (MAX_KEY_LENGTH + 1), "  u\n1  "]


@pytest.mark.parametrize("common", [1.0, 0.9, 0.5, 0.0], ids=lambda c: f"common-{c}")
def test_a_block_is_held_to_the_limits_as_its_rows_would_be(common: float) -> None:
    header = ["seats", "plan", "id"]
    assert ColumnPlan.fitting(INBOUND, header) is not None
    rng = random.Random(common)
    for size in (1, 7, 300):
        rows = [["3", "gold" if rng.random() < common else rng.choice(VALUES),
                 "u1" if rng.random() < common else rng.choice(KEY_VALUES)] for _ in range(size)]
        assert by_block(map_block(INBOUND, Block(header, list(range(size)), rows, []))) == \
            row_by_row(INBOUND, header, rows)


def test_json_values_are_held_to_the_limits_too() -> None:
    rows = [{"id": "u1", "plan": "a\u0000b"}, {"id": "k" * 600, "plan": "x"}, {"id": 7, "plan": "ok"}]
    mapped = map_block(INBOUND, Block(None, [1, 2, 3], rows, []))
    assert mapped.keys == ["7"] and [number for number, _ in mapped.refused] == [1, 2]
