"""Inbound bookkeeping that must not grow with the row count: spooled key sets and sent-row numbers."""

from __future__ import annotations

import random

import pytest

from walkme_dic.sync.engine import RowNumbers
from walkme_dic.sync.keys import SpooledKeys, count_missing, key_hash


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 25_000])
def test_spooled_keys_come_back_sorted_across_runs(count: int) -> None:
    rng = random.Random(count)
    keys = [f"user-{rng.randrange(10 * count + 1)}" for _ in range(count)]
    with SpooledKeys(run=1000) as spooled:
        for key in keys:
            spooled.add(key)
        assert len(spooled.pending) < 1000, "at most one run stays in memory"
        assert list(spooled.sorted()) == sorted(key_hash(k) for k in keys)


def test_count_missing_counts_distinct_absent_values() -> None:
    assert count_missing([1, 2, 2, 5, 7, 9], [2, 3, 7]) == 3  # 1, 5, 9
    assert count_missing([], [1]) == 0
    assert count_missing([4, 4], []) == 1


def test_users_absent_from_a_large_source_are_counted_through_the_spool() -> None:
    with SpooledKeys(run=100) as source, SpooledKeys(run=100) as imported:
        for index in range(0, 3000, 2):
            source.add(f"u{index}")
        for index in range(3000):
            imported.add(f"u{index}")
        assert count_missing(imported.sorted(), source.sorted()) == 1500


def test_row_numbers_follow_the_sent_records_around_rejected_rows() -> None:
    sent = [1, 2, 3, 5, 6, 9, 10, 11, 12, 20]  # rows 4, 7, 8, 13-19 were rejected
    numbers = RowNumbers()
    for row in sent:
        numbers.add(row)
    assert [numbers.of(i) for i in range(len(sent))] == sent
    assert len(numbers.rows) == 4, "one entry per consecutive stretch, not per row"
    assert numbers.of(len(sent)) == 0 and numbers.of(-1) == 0
