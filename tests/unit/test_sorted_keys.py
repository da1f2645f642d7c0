"""The inbound run's sorted key array (used to count users absent from the source)."""

from __future__ import annotations

import random
from array import array

import pytest

from walkme_dic.sync.engine import sorted_array


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 25_000])
def test_sorted_array_equals_sorted_across_run_boundaries(count: int) -> None:
    rng = random.Random(count)
    keys = array("Q", (rng.getrandbits(64) for _ in range(count)))
    keys.extend(keys[: count // 10])  # duplicates survive the merge
    result = sorted_array(keys, run=1000)
    assert result.typecode == "Q" and list(result) == sorted(keys)
