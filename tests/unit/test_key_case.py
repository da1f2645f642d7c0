"""The key rule: trimmed, case kept; mapping.key.caseFold compares and sends keys case-folded — both mapping
paths alike."""

from __future__ import annotations

import random

import orjson
import pytest

from tests.unit.test_columns import by_block, lines, row_by_row
from walkme_dic.api.integration import Mapping
from walkme_dic.sync.columns import ColumnPlan, map_block
from walkme_dic.sync.mapping import Mapper
from walkme_dic.sync.readers import Block

KEYS = ["ALICE@x.com", " alice@X.com ", "Straße", "STRASSE", "İstanbul", "ǅ", "u1", "", "  "]


def mapper(*, fold: bool, copy_key: bool = False) -> Mapper:
    return Mapper(Mapping.model_validate({
        "key": {"source": "id", "destination": "email" if copy_key else "uuid", "caseFold": fold},
        "fields": [{"source": "plan", "destination": "plan"}]}), "uuid")


def test_a_key_is_trimmed_and_keeps_its_case_by_default() -> None:
    assert mapper(fold=False).map({"id": " ALICE@x.com ", "plan": "gold"}) == {"uuid": "ALICE@x.com", "plan": "gold"}


def test_case_fold_sends_the_key_case_folded() -> None:
    fold = mapper(fold=True, copy_key=True)
    assert fold.map({"id": " ALICE@x.com ", "plan": "Gold"}) == \
        {"uuid": "alice@x.com", "email": "alice@x.com", "plan": "Gold"}, "only the key is folded"
    assert fold.map({"id": "Straße"})["uuid"] == fold.map({"id": "STRASSE"})["uuid"] == "strasse"


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("copy_key", [True, False])
def test_a_block_maps_its_keys_as_its_rows_would_one_by_one(fold: bool, copy_key: bool) -> None:
    plan = mapper(fold=fold, copy_key=copy_key)
    header = ["plan", "id"]
    assert ColumnPlan.fitting(plan, header) is not None
    rng = random.Random(f"{fold}{copy_key}")
    for size in (1, 7, 300):
        rows = [["gold", rng.choice(KEYS)] for _ in range(size)]
        mapped = map_block(plan, Block(header, list(range(size)), rows, []))
        assert by_block(mapped) == row_by_row(plan, header, rows)
        assert [orjson.loads(record)["uuid"] for record in lines(mapped.records)] == mapped.keys
        common = [["gold", "ALICE@x.com"]] * size  # the column path's whole-column case
        assert map_block(plan, Block(header, list(range(size)), common, [])).keys == \
            ["alice@x.com" if fold else "ALICE@x.com"] * size
