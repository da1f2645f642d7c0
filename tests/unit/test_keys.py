"""Inbound bookkeeping that must not grow with the row count: spooled key sets and sent-row numbers."""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from collections.abc import Callable

import pytest

from walkme_dic.sync.keys import BOUNDS, HashRuns, key_hash, partitions, repeated
from walkme_dic.sync.spool import DUPLICATE_SAMPLES, InboundSpool, RowNumbers


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 25_000])
@pytest.mark.parametrize("limit", [1, 700, 1 << 18])
def test_hashes_come_back_sorted_a_partition_at_a_time(count: int, limit: int) -> None:
    rng = random.Random(count)
    keys = [f"user-{rng.randrange(10 * count + 1)}" for _ in range(count)]
    with HashRuns(run=1000) as spooled:
        for key in keys:
            spooled.extend([float(key_hash(key))])
        assert len(spooled.pending) < 1000, "at most one run stays in memory"
        parts = [part for (part,) in partitions([spooled], limit)]
        assert [value for part in parts for value in part] == sorted(float(key_hash(k)) for k in keys)
        assert all(len(part) <= limit or len({bisect_right(BOUNDS, value) for value in part}) == 1 for part in parts), \
            "a partition fits the limit or is a single bin"


EXTREMES = [-(2.0**63), -(2.0**56), -1.0, -0.0, 0.0, 1.0, *BOUNDS, 2.0**56 - 1, 2.0**63]


@pytest.mark.parametrize("run", [1, 5, 1000])
def test_partitions_of_two_stores_cover_the_same_ranges(run: int) -> None:
    """Values on the bins' edges and at both ends land in the same partition in both stores."""
    rng = random.Random(run)
    left, right = EXTREMES + [rng.uniform(-(2.0**63), 2.0**63) for _ in range(500)], EXTREMES[::-1]
    with HashRuns(run) as first, HashRuns(run) as second:
        first.extend(left)
        second.extend(right)
        parts = list(partitions([first, second], limit=40))
        assert [v for a, _ in parts for v in a] == sorted(left) and [v for _, b in parts for v in b] == sorted(right)
        for a, b in parts:  # every value of b lies in its partition's range of a: no overlap between partitions
            assert all(value in a for value in b)


@pytest.mark.parametrize("values", [[], [1.0], [1.0, 1.0], [1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0], [0.0, -0.0]])
def test_repeated_names_the_values_that_occur_twice(values: list[float]) -> None:
    assert repeated(sorted(values)) == {value for value in values if values.count(value) > 1}


def test_row_numbers_follow_the_sent_records_around_rejected_rows() -> None:
    sent = [1, 2, 3, 5, 6, 9, 10, 11, 12, 20]  # rows 4, 7, 8, 13-19 were rejected
    numbers = RowNumbers()
    for block in ([1, 2, 3], [5, 6, 9], [10, 11, 12], [20]):  # consecutive blocks and ones with gaps
        numbers.extend(block)
    assert [numbers.of(i) for i in range(len(sent))] == sent
    assert len(numbers.rows) == 4, "one entry per consecutive stretch, not per row"
    assert numbers.of(len(sent)) == 0 and numbers.of(-1) == 0


def spooled(keys: list[str], run: int = 1000, hash_key: Callable[[str], int] = key_hash,
            partition: int = 1 << 18) -> InboundSpool:
    spool = InboundSpool(hash_key=hash_key, run=run, partition=partition)
    rows = list(range(1, len(keys) + 1))
    for start in range(0, len(keys), 3):  # blocks of three: keys repeat within and across blocks
        block = rows[start:start + 3]
        spool.add(block, [keys[row - 1] for row in block],
                  b"".join(json.dumps({"uuid": keys[row - 1], "row": row}).encode() + b"\n" for row in block))
    return spool


@pytest.mark.parametrize("run", [2, 1000])
def test_the_last_row_of_each_key_is_sent_once_in_source_order(run: int) -> None:
    keys = ["a", "b", "a", "c", "b", "a", "d"]
    with spooled(keys, run) as spool:
        assert spool.resolve() is None
        sent = [json.loads(line) for batch in spool.batches(2) for _, line in batch]
        assert [(r["uuid"], r["row"]) for r in sent] == [("c", 4), ("b", 5), ("a", 6), ("d", 7)]
        assert spool.duplicates.count == 3 and spool.unique == 4
        assert spool.duplicates.samples == [(1, 3), (2, 5), (3, 6)], "(row left out, the later row)"


@pytest.mark.parametrize("partition", [3, 1 << 18], ids=["repeats-found-in-many-scans", "one-scan"])
def test_duplicates_in_a_large_spool_keep_only_the_first_samples(partition: int) -> None:
    rng = random.Random(5)
    keys = [f"user-{rng.randrange(3000)}" for _ in range(20_000)]
    with spooled(keys, run=1500, partition=partition) as spool:
        assert spool.resolve() is None
        sent = [json.loads(line)["row"] for batch in spool.batches(2) for _, line in batch]
        last = {key: row for row, key in enumerate(keys, start=1)}
        assert sent == sorted(last.values())
        assert spool.duplicates.count == len(keys) - len(last)
        left_out = sorted(set(range(1, len(keys) + 1)) - set(last.values()))
        assert [row for row, _ in spool.duplicates.samples] == left_out[:DUPLICATE_SAMPLES]


@pytest.mark.parametrize("size", [1, 7, 100])
def test_batches_cut_records_across_read_blocks_and_leave_out_the_replaced(size: int) -> None:
    """Records straddling the spool's 1 MiB reads come back whole; batches hold ``size`` (the last fewer),
    indexes run on, and a replaced record is left out wherever it falls."""
    rng = random.Random(size)
    keys = [f"user-{rng.randrange(20_000)}" + "x" * rng.randrange(200) for _ in range(30_000)]  # ~3.6 MB
    with spooled(keys, run=4000) as spool:
        spool.resolve()
        batches = list(spool.batches(size))
        assert all(len(batch) == size for batch in batches[:-1]) and 0 < len(batches[-1]) <= size
        sent = [(index, json.loads(line)) for batch in batches for index, line in batch]
        assert [record["row"] for _, record in sent] == last_rows(keys)
        assert all(record["uuid"] == keys[index] and record["row"] == index + 1 for index, record in sent)


def sent_rows_and_duplicates(keys: list[str], run: int, hash_key: Callable[[str], int],
                             partition: int = 1 << 18) -> tuple[list[int], int]:
    with spooled(keys, run, hash_key, partition) as spool:
        spool.resolve()
        return [json.loads(line)["row"] for batch in spool.batches(2) for _, line in batch], spool.duplicates.count


def last_rows(keys: list[str]) -> list[int]:
    return sorted({key: row for row, key in enumerate(keys, start=1)}.values())


LONG = "k" * 70  # keys that differ only at their end
COLLIDING_KEYS = {
    "distinct keys": ["a", "b", "c", "d"],
    "repeated and distinct": ["a", "b", "a", "c", "b", "a", "d"],
    "spaces kept (the engine trims before)": ["a", "a ", " a", "a"],
    "long keys differing at the end": [LONG + "1", LONG + "2", LONG + "1", LONG],
    "prefixes of each other": ["", "x", "xx", "x", ""],
    "non-ASCII and control characters": ["é", "e\u0301", "é", "a\nb", "a\rb", "a\nb", "\ud800"],
}


@pytest.mark.parametrize("keys", COLLIDING_KEYS.values(), ids=COLLIDING_KEYS.keys())
@pytest.mark.parametrize("run", [2, 1000])
@pytest.mark.parametrize("shared", [0, -1, -(2**63), 2**63 - 1], ids=["0", "-1", "min", "max"])
def test_different_keys_sharing_a_hash_are_all_sent(keys: list[str], run: int, shared: int) -> None:
    """Every key hashed to the same value (any signed 64-bit one): only the rows whose keys are really equal
    are duplicates."""
    sent, duplicates = sent_rows_and_duplicates(keys, run, hash_key=lambda key: shared)
    assert sent == last_rows(keys)
    assert duplicates == len(keys) - len(set(keys))


@pytest.mark.parametrize("bits", [1, 4, 12, 64])
@pytest.mark.parametrize("partition", [5, 1 << 18])
def test_duplicates_are_exact_whatever_the_hash_width(bits: int, partition: int) -> None:
    rng = random.Random(bits)
    keys = [f"user-{rng.randrange(4000)}" for _ in range(10_000)]
    sent, duplicates = sent_rows_and_duplicates(keys, 700, hash_key=lambda key: key_hash(key) >> (64 - bits),
                                                partition=partition)
    assert sent == last_rows(keys)
    assert duplicates == len(keys) - len(set(keys))
