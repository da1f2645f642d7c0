"""The inbound spool: mapped, encoded records on local disk between reading the source and sending.

An inbound run reads, validates and maps every row once and appends each record, already encoded
as JSON, to a file in the Job's temporary directory; memory holds no rows, whatever the size. Only
then does the run know how many rows were rejected, so it can refuse to start sending when it is
over the limit, and which keys repeat: for every key only its last row is sent, so the last row
wins whatever the retries and the order in which concurrent batches land. The records are sent
from the spool in their source order, repeated keys left out.

Repeated keys are found by sorting key hashes (sync/keys.py; memory holds one run and one partition
of them), and are exact: the keys themselves are stored too (``keys.bin``, with where each starts in
``key-offsets.bin``), and records whose hashes are equal are compared by their keys, so two different
keys that happen to share a hash are both sent. Each record's hash is also kept in spool order
(``key-hashes.bin``): once the repeated hashes are known, one scan of it finds their records.
"""

from __future__ import annotations

import heapq
import os
import struct
import sys
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate, compress, count
from types import TracebackType
from typing import IO, Protocol, Self

from walkme_dic.sync.keys import PARTITION, RUN, HashRuns, SortedSpool, key_hash, partitions, repeated

DUPLICATE_SAMPLES = 10
READ_BUFFER = 1024 * 1024
STORED_KEY = partial(str.encode, encoding="utf-8", errors="surrogatepass")  # any str, lone surrogates too
OFFSET = 8  # bytes of one key offset in key-offsets.bin (an unsigned 64-bit int in native byte order)
KEY_BOUNDS = struct.Struct("=QQ")  # a key's offset and the next one's: where it starts and ends in keys.bin


class Mask(Protocol):
    """A byte per record (0: leave it out) for any slice of records: ``mask[start:stop]``."""

    def __getitem__(self, window: slice) -> bytes: ...


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

    def __init__(self, directory: str | None = None, hash_key: Callable[[str], int] = key_hash, *,
                 run: int = RUN, partition: int = PARTITION) -> None:
        """``hash_key`` maps a key to an int (a float holds it); equal keys must get equal hashes (different keys
        may too). ``run`` and ``partition``: how many hashes memory holds at a time (sync/keys.py)."""
        self.directory = tempfile.TemporaryDirectory(prefix="walkme-dic-spool-", dir=directory)
        self.file = self._open("records.jsonl", "wb")
        self.key_file = self._open("keys.bin")
        self.offset_file = self._open("key-offsets.bin")
        self.key_fd, self.offset_fd = self.key_file.fileno(), self.offset_file.fileno()
        self.hash_file = self._open("key-hashes.bin")  # each record's key hash, in spool order
        self.key_bytes = 0
        self.hash_key = hash_key
        self.hashes = HashRuns(run)  # the same hashes, sorted
        self.partition = partition
        self.rows = RowNumbers()
        self.superseded = SortedSpool()  # spool indexes of records a later row replaces
        self.duplicates = Duplicates()
        self.first_left_out: list[tuple[int, int]] = []  # max-heap of (-index left out, later index): the first few

    def _open(self, name: str, mode: str = "w+b") -> IO[bytes]:
        return open(os.path.join(self.directory.name, name), mode, buffering=READ_BUFFER)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.key_file.close()
        self.offset_file.close()
        self.hash_file.close()
        self.hashes.close()
        self.superseded.close()
        self.directory.cleanup()

    @property
    def count(self) -> int:
        return self.rows.count

    @property
    def unique(self) -> int:
        return self.count - self.duplicates.count

    def add(self, rows: list[int], keys: list[str], records: bytes) -> None:
        """Mapped records of source rows ``rows`` (ascending), with their keys; ``records``: each one's JSON
        followed by a newline (JSON escapes those inside text)."""
        if not rows:
            return
        hashes = list(map(float, map(self.hash_key, keys)))
        self.hashes.extend(hashes)
        array("d", hashes).tofile(self.hash_file)
        joined = "".join(keys)
        if joined.isascii():  # a character a byte: the keys' lengths are their lengths in bytes
            stored, lengths = joined.encode("ascii"), map(len, keys)
        else:
            each = list(map(STORED_KEY, keys))
            stored, lengths = b"".join(each), map(len, each)
        offsets = array("Q", accumulate(lengths, initial=self.key_bytes))
        self.key_bytes = offsets.pop()
        offsets.tofile(self.offset_file)
        self.key_file.write(stored)
        self.rows.extend(rows)
        self.file.write(records)

    def resolve(self) -> None:
        """Find the repeated keys (all but the last row of each)."""
        for file in (self.file, self.key_file, self.hash_file):
            file.flush()
        self.offset_file.write(self.key_bytes.to_bytes(OFFSET, sys.byteorder))  # where the last key ends
        self.offset_file.flush()
        repeats: set[float] = set()
        for (source,) in partitions([self.hashes], self.partition):
            repeats |= repeated(source)
            if len(repeats) >= self.partition:
                self._supersede(repeats)
                repeats = set()
        if repeats:
            self._supersede(repeats)
        self.duplicates.samples = sorted((self.rows.of(-left_out), self.rows.of(later))
                                         for left_out, later in self.first_left_out)

    def _supersede(self, repeats: set[float]) -> None:
        """Note the records a later one with the same key replaces, among the records with a hash in
        ``repeats``: only their keys are read and compared (a cost that follows the duplicates, not the rows)."""
        latest: dict[bytes, int] = {}  # each key's latest index so far
        for index in self._hashed_in(repeats):
            key = self._key_of(index)
            previous = latest.get(key)
            latest[key] = index
            if previous is None:
                continue  # the key's first record (another key may share its hash)
            self.superseded.add(previous)
            self.duplicates.count += 1
            entry = (-previous, index)
            if len(self.first_left_out) < DUPLICATE_SAMPLES:
                heapq.heappush(self.first_left_out, entry)
            elif entry > self.first_left_out[0]:
                heapq.heapreplace(self.first_left_out, entry)

    def _hashed_in(self, wanted: set[float]) -> Iterator[int]:
        """The spool indexes of the records whose key hash is in ``wanted``, ascending."""
        start = 0
        with open(self.hash_file.name, "rb") as stream:
            while chunk := stream.read(READ_BUFFER):
                hashes = array("d")
                hashes.frombytes(chunk)
                yield from compress(count(start), map(wanted.__contains__, hashes))
                start += len(hashes)

    def _key_of(self, index: int) -> bytes:
        """The stored key of the ``index``-th record (positioned reads: one pair of them per record)."""
        start, end = KEY_BOUNDS.unpack(os.pread(self.offset_fd, KEY_BOUNDS.size, index * OFFSET))
        return os.pread(self.key_fd, end - start, start)

    def batches(self, size: int, keep: Mask | None = None) -> Iterator[list[tuple[int, bytes]]]:
        """(spool index, encoded record) in source order, ``size`` at a time, leaving out the records a later
        row replaces (known once :meth:`resolve` ran) and, with ``keep`` (a byte per record of a slice), those
        whose byte is 0 (change detection: unchanged users). The file is read a block at a time and cut into records by
        ``bytes.split``: no per-record work in Python but for the left-out ones."""
        self.file.flush()
        skipped = self.superseded.sorted()
        next_skip = next(skipped, None)
        pending: list[tuple[int, bytes]] = []
        index, tail = 0, b""
        with open(self.file.name, "rb", buffering=0) as stream:
            while block := stream.read(READ_BUFFER):
                lines = (tail + block).split(b"\n")
                tail = lines.pop()  # the part of a record the next block finishes (b"" at a record's end)
                end = index + len(lines)
                records: Iterator[tuple[int, bytes]] = zip(range(index, end), lines, strict=True)
                if keep is not None:
                    records = compress(records, keep[index:end])
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
