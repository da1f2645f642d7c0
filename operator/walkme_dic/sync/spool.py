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
import sys
import tempfile
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate
from types import TracebackType
from typing import Self

from walkme_dic.sync.keys import IndexedHashes, SortedSpool, count_missing, key_hash

DUPLICATE_SAMPLES = 10
READ_BUFFER = 1024 * 1024
STORED_KEY = partial(str.encode, encoding="utf-8", errors="surrogatepass")  # any str, lone surrogates too
OFFSET = 8  # bytes of one key offset in key-offsets.bin (an unsigned 64-bit int in native byte order)


class RowNumbers:
    """Row numbers of the records spooled, by spool index, kept as the starts of consecutive stretches
    (rows are consecutive except around rejected ones), so memory follows the rejections, not the rows."""

    def __init__(self) -> None:
        self.indexes: list[int] = []  # spool index where a stretch starts
        self.rows: list[int] = []  # its row number
        self.count = 0

    def extend(self, rows: list[int]) -> None:
        """The row numbers of the next records spooled, ascending."""
        if rows[-1] - rows[0] == len(rows) - 1:  # ascending: consecutive, one stretch (the common case)
            self._stretch(rows[0], len(rows))
            return
        for row in rows:
            self._stretch(row, 1)

    def _stretch(self, row: int, length: int) -> None:
        if not self.rows or row != self.rows[-1] + (self.count - self.indexes[-1]):
            self.indexes.append(self.count)
            self.rows.append(row)
        self.count += length

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
        """``hash_key`` maps a key to a signed 64-bit int; equal keys must get equal hashes (different keys may
        too)."""
        self.directory = tempfile.TemporaryDirectory(prefix="walkme-dic-spool-", dir=directory)
        self.path = os.path.join(self.directory.name, "records.jsonl")
        self.file = open(self.path, "wb", buffering=READ_BUFFER)  # noqa: SIM115 - closed by close()
        self.key_file = open(  # noqa: SIM115 - closed by close()
            os.path.join(self.directory.name, "keys.bin"), "w+b", buffering=READ_BUFFER)
        self.offset_file = open(  # noqa: SIM115 - closed by close()
            os.path.join(self.directory.name, "key-offsets.bin"), "w+b", buffering=READ_BUFFER)
        self.key_bytes = 0
        self.hash_key = hash_key
        self.keys = IndexedHashes()  # each record's key hash, by spool index
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
        self.keys.close()
        self.superseded.close()
        self.directory.cleanup()

    @property
    def count(self) -> int:
        return self.rows.count

    @property
    def unique(self) -> int:
        return self.count - self.duplicates.count

    def add(self, rows: list[int], keys: list[str], encoded: list[bytes]) -> None:
        """Mapped records of source rows ``rows`` (ascending), with their keys; an encoded record holds no
        newline (JSON escapes them)."""
        if not rows:
            return
        self.keys.extend(map(self.hash_key, keys))
        stored = list(map(STORED_KEY, keys))
        offsets = array("Q", accumulate(map(len, stored), initial=self.key_bytes))
        self.key_bytes = offsets.pop()
        offsets.tofile(self.offset_file)
        self.key_file.write(b"".join(stored))
        self.rows.extend(rows)
        self.file.write(b"\n".join(encoded))
        self.file.write(b"\n")

    def resolve(self, imported: Iterable[int] | None = None) -> int | None:
        """Find the repeated keys (all but the last row of each); with ``imported`` (ascending key hashes
        WalkMe has), also return how many of those are absent from this source."""
        self.file.flush()
        self.key_file.flush()
        self.offset_file.write(self.key_bytes.to_bytes(OFFSET, sys.byteorder))  # where the last key ends
        self.offset_file.flush()
        distinct = self._distinct_hashes()
        missing = count_missing(imported, distinct) if imported is not None else None
        deque(distinct, maxlen=0)  # count_missing may stop early; the duplicates need the whole stream
        return missing

    def _distinct_hashes(self) -> Iterator[int]:
        """Every key hash once, ascending, noting along the way the records a later one with the same key
        replaces. Records sharing a hash come in a group, oldest first; only in a group of two or more
        are the stored keys read and compared (a cost that follows the duplicates, not the rows)."""
        samples: list[tuple[int, int]] = []  # max-heap by negated index: the smallest indexes kept
        group_hash: int | None = None  # hashes are signed: no int can stand for "no group yet"
        latest: dict[bytes, int] | None = None  # each key of the group: its latest index, once a second record came
        first = -1  # index of the group's first record
        for hashed, index in self.keys.sorted():
            if hashed != group_hash:
                yield hashed
                group_hash, latest, first = hashed, None, index
                continue
            if latest is None:  # the group's second record: only now are keys read
                latest = {self._key_of(first): first}
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
        start, end = int.from_bytes(bounds[:OFFSET], sys.byteorder), int.from_bytes(bounds[OFFSET:], sys.byteorder)
        return os.pread(self.key_file.fileno(), end - start, start)

    def batches(self, size: int) -> Iterator[list[tuple[int, bytes]]]:
        """(spool index, encoded record) in source order, ``size`` at a time, leaving out the records a later
        row replaces (known once :meth:`resolve` ran). The file is read a block at a time and cut into
        records by ``bytes.split``: no per-record work in Python but for the left-out ones."""
        self.file.flush()
        skipped = self.superseded.sorted()
        next_skip = next(skipped, None)
        pending: list[tuple[int, bytes]] = []
        index, tail = 0, b""
        with open(self.path, "rb", buffering=0) as stream:
            while block := stream.read(READ_BUFFER):
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # the part of a record the next block finishes (b"" at a record's end)
                end = index + len(lines)
                records = zip(range(index, end), lines, strict=True)
                if next_skip is not None and next_skip < end:
                    left_out = set()
                    while next_skip is not None and next_skip < end:
                        left_out.add(next_skip)
                        next_skip = next(skipped, None)
                    pending.extend(record for record in records if record[0] not in left_out)
                else:
                    pending.extend(records)
                index = end
                full = len(pending) - len(pending) % size
                yield from (pending[start:start + size] for start in range(0, full, size))
                pending = pending[full:]
        if pending:
            yield pending
