"""Sets of user keys too large for memory: 64-bit hashes kept as sorted runs in a temporary file.

An inbound run counts the users WalkMe keeps although the source no longer has them, and finds
the rows whose key repeats later in the source. Both sides can have tens of millions of keys, so
neither is held in memory: values are spooled to disk in sorted runs, read back as one sorted
stream (a k-way merge), and streams are joined. A source key is spooled with its record's send
index (hash << 64 | index), so that equal keys come back next to each other, oldest first.
"""

from __future__ import annotations

import heapq
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Self

RUN = 1 << 18  # keys sorted in memory at a time: 2 MiB of hashes
READ = 1 << 13  # keys read back per run at a time during the merge
MASK = (1 << 64) - 1


def key_hash(key: str) -> int:
    """64 bits of the key: Python's string hash (SipHash), the same for the same key within one process —
    all a run compares — and about eight times cheaper than a hashlib digest."""
    return hash(key) & MASK


class SortedSpool:
    """Collects non-negative ints of one or two 64-bit ``words``; memory holds one run, the others are
    sorted runs in a temporary file."""

    def __init__(self, run: int = RUN, words: int = 1) -> None:
        if words not in (1, 2):
            raise ValueError("words: 1 or 2")
        self.run, self.words = run, words
        self.pending: list[int] = []
        self.file = tempfile.TemporaryFile(prefix="walkme-dic-keys-")  # noqa: SIM115 - closed by __exit__
        self.runs: list[tuple[int, int]] = []  # (byte offset, key count) of each sorted run

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.file.close()

    def add(self, value: int) -> None:
        self.pending.append(value)
        if len(self.pending) >= self.run:
            self._spill()

    def sorted(self) -> Iterator[int]:
        """Every value added, in ascending order (duplicates kept)."""
        self._spill()
        return heapq.merge(*(self._read(offset, count) for offset, count in self.runs))

    def _spill(self) -> None:
        if not self.pending:
            return
        self.file.seek(0, 2)
        self.runs.append((self.file.tell(), len(self.pending)))
        self.pending.sort()
        if self.words == 1:
            array("Q", self.pending).tofile(self.file)
        else:
            array("Q", (word for value in self.pending for word in (value >> 64, value & MASK))).tofile(self.file)
        self.pending = []

    def _read(self, offset: int, count: int) -> Iterator[int]:
        width = 8 * self.words
        for start in range(0, count, READ):
            self.file.seek(offset + start * width)  # runs share the file: seek before every read
            block: array[int] = array("Q")
            block.frombytes(self.file.read(min(READ, count - start) * width))
            if self.words == 1:
                yield from block
            else:
                words = iter(block)
                yield from (high << 64 | low for high, low in zip(words, words, strict=False))


class SpooledKeys(SortedSpool):
    """Hashes of user keys (64 bits each)."""

    def add_key(self, key: str) -> None:
        self.add(key_hash(key))


def count_missing(wanted: Iterable[int], present: Iterable[int]) -> int:
    """How many distinct values of the ascending ``wanted`` are absent from the ascending ``present``."""
    missing, previous = 0, None
    others = iter(present)
    current = next(others, None)
    for value in wanted:
        if value == previous:
            continue
        previous = value
        while current is not None and current < value:
            current = next(others, None)
        if current != value:
            missing += 1
    return missing
