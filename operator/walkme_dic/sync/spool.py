"""The inbound spool: mapped, encoded records on local disk between reading the source and sending.

An inbound run reads, validates and maps every row once and appends each record, already encoded
as JSON, to a file in the Job's temporary directory; memory holds no rows, whatever the size. Only
then does the run know how many rows were rejected, so it can refuse to start sending when it is
over the limit, and which keys repeat: for every key only its last row is sent, so the last row
wins whatever the retries and the order in which concurrent batches land. The records are sent
from the spool in their source order, repeated keys left out.

Repeated keys are found by sorting 64-bit key hashes (memory holds one run of them), and are exact:
the keys themselves are stored too (``keys.bin``, with where each starts in ``key-offsets.bin``),
and records whose hashes are equal are compared by their keys, so two different keys that happen
to share a hash are both sent.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from walkme_dic.sync.keys import MASK, SortedSpool, count_missing, key_hash

DUPLICATE_SAMPLES = 10
READ_BUFFER = 1024 * 1024
OFFSET = 8  # bytes of one key offset in key-offsets.bin


class RowNumbers:
    """Row numbers of the records spooled, by spool index, kept as the starts of consecutive stretches
    (rows are consecutive except around rejected ones), so memory follows the rejections, not the rows."""

    def __init__(self) -> None:
        self.indexes: list[int] = []  # spool index where a stretch starts
        self.rows: list[int] = []  # its row number
        self.count = 0

    def add(self, row: int) -> None:
        if not self.rows or row != self.rows[-1] + (self.count - self.indexes[-1]):
            self.indexes.append(self.count)
            self.rows.append(row)
        self.count += 1

    def of(self, index: int) -> int:
        """The row number of the ``index``-th record spooled (0 if there is none)."""
        if not 0 <= index < self.count:
            return 0
        stretch = bisect_right(self.indexes, index) - 1
        return self.rows[stretch] + index - self.indexes[stretch]


@dataclass
class Duplicates:
    """Rows left out because a later row has the same key: how many, and the first few (row, later row)."""

    count: int = 0
    samples: list[tuple[int, int]] = field(default_factory=list)


class InboundSpool:
    """Encoded records (one JSON object a line) in a temporary directory, their keys and row numbers."""

    def __init__(self, directory: str | None = None, hash_key: Callable[[str], int] = key_hash) -> None:
        """``hash_key`` maps a key to 64 bits; equal keys must get equal hashes (different keys may too)."""
        self.directory = tempfile.TemporaryDirectory(prefix="walkme-dic-spool-", dir=directory)
        self.path = os.path.join(self.directory.name, "records.jsonl")
        self.file = open(self.path, "wb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by close()
        self.key_file = open(  # noqa: SIM115 - closed by close()
            os.path.join(self.directory.name, "keys.bin"), "w+b", buffering=READ_BUFFER)
        self.offset_file = open(  # noqa: SIM115 - closed by close()
            os.path.join(self.directory.name, "key-offsets.bin"), "w+b", buffering=READ_BUFFER)
        self.key_bytes = 0
        self.hash_key = hash_key
        self.keys = SortedSpool(words=2)  # key hash << 64 | spool index
        self.rows = RowNumbers()
        self.superseded = SortedSpool()  # spool indexes of records a later row replaces
        self.duplicates = Duplicates()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.key_file.close()
        self.offset_file.close()
        self.keys.file.close()
        self.superseded.file.close()
        self.directory.cleanup()

    @property
    def count(self) -> int:
        return self.rows.count

    @property
    def unique(self) -> int:
        return self.count - self.duplicates.count

    def add(self, row: int, key: str, encoded: bytes) -> None:
        """One mapped record of source row ``row`` (``encoded`` holds no newline: JSON escapes them)."""
        self.keys.add(self.hash_key(key) << 64 | self.rows.count)
        self.offset_file.write(self.key_bytes.to_bytes(OFFSET, "little"))
        self.key_bytes += self.key_file.write(key.encode("utf-8", "surrogatepass"))
        self.rows.add(row)
        self.file.write(encoded)
        self.file.write(b"\n")

    def resolve(self, imported: Iterable[int] | None = None) -> int | None:
        """Find the repeated keys (all but the last row of each); with ``imported`` (ascending key hashes
        WalkMe has), also return how many of those are absent from this source."""
        self.file.flush()
        self.key_file.flush()
        self.offset_file.write(self.key_bytes.to_bytes(OFFSET, "little"))  # where the last key ends
        self.offset_file.flush()
        distinct = self._distinct_hashes()
        missing = count_missing(imported, distinct) if imported is not None else None
        for _ in distinct:  # count_missing may stop early; the duplicates need the whole stream
            pass
        return missing

    def _distinct_hashes(self) -> Iterator[int]:
        """Every key hash once, ascending, noting along the way the records a later one with the same key
        replaces. Records sharing a hash come in a group, oldest first; only in a group of two or more
        are the stored keys read and compared (a cost that follows the duplicates, not the rows)."""
        samples: list[tuple[int, int]] = []  # max-heap by negated index: the smallest indexes kept
        group_hash = -1
        latest: dict[bytes, int] = {}  # each key of the group (their hash is group_hash): its latest index
        first = -1  # index of the group's first record while its key is not read
        for value in self.keys.sorted():
            hashed, index = value >> 64, value & MASK
            if hashed != group_hash:
                yield hashed
                group_hash, latest, first = hashed, {}, index
                continue
            if first >= 0:
                latest[self._key_of(first)] = first
                first = -1
            key = self._key_of(index)
            previous = latest.get(key)
            latest[key] = index
            if previous is None:
                continue  # another key with the same hash: not a duplicate
            self.superseded.add(previous)
            self.duplicates.count += 1
            entry = (-previous, index)
            if len(samples) < DUPLICATE_SAMPLES:
                heapq.heappush(samples, entry)
            elif entry > samples[0]:
                heapq.heapreplace(samples, entry)
        self.duplicates.samples = sorted((self.rows.of(-first), self.rows.of(later)) for first, later in samples)

    def _key_of(self, index: int) -> bytes:
        """The stored key of the ``index``-th record (positioned reads: the merge visits keys out of order)."""
        bounds = os.pread(self.offset_file.fileno(), 2 * OFFSET, index * OFFSET)
        start, end = int.from_bytes(bounds[:OFFSET], "little"), int.from_bytes(bounds[OFFSET:], "little")
        return os.pread(self.key_file.fileno(), end - start, start)

    def records(self) -> Iterator[tuple[int, bytes]]:
        """(spool index, encoded record) in source order, leaving out the records a later row replaces
        (known once :meth:`resolve` ran)."""
        self.file.flush()
        skipped = self.superseded.sorted()
        next_skip = next(skipped, None)
        with open(self.path, "rb", buffering=READ_BUFFER) as stream:
            for index, line in enumerate(stream):
                if index == next_skip:
                    next_skip = next(skipped, None)
                    continue
                yield index, line[:-1]
