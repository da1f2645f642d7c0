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
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Generic, Self, TypeVar

RUN = 1 << 18  # keys sorted in memory at a time: 2 MiB of hashes
READ = 1 << 13  # keys read back per run at a time during the merge
Value = TypeVar("Value")
WORD = "q"  # array type of a hash or an index: a signed 64-bit int

# 64 bits of a key: Python's string hash (SipHash), a signed 64-bit int, the same for the same key within
# one process — all a run compares — and, being the builtin itself, no Python call per key.
key_hash: Callable[[str], int] = hash


class _Runs(Generic[Value]):
    """Values kept as sorted runs in a temporary file, memory holding the pending one; ``sorted()`` merges
    the runs. A subclass says how a run is sorted and written (``_spill``) and read back (``_read``)."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.pending: list[int] = []
        self.file = tempfile.TemporaryFile(prefix="walkme-dic-keys-")  # noqa: SIM115 - closed by close()
        self.runs: list[tuple[int, int]] = []  # (byte offset, value count) of each sorted run

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    def sorted(self) -> Iterator[Value]:
        """Every value added, in ascending order (duplicates kept)."""
        self._spill()
        return heapq.merge(*(self._read(offset, count) for offset, count in self.runs))

    def _added(self) -> None:
        """Spill the pending values once they fill a run."""
        if len(self.pending) >= self.run:
            self._spill()

    def _spill(self) -> None:
        if not self.pending:
            return
        self.file.seek(0, 2)
        self.runs.append((self.file.tell(), len(self.pending)))
        self._write_run()
        self.pending = []

    def _write_run(self) -> None:
        """The pending values, sorted, at the end of the file."""
        raise NotImplementedError

    def _read(self, offset: int, count: int) -> Iterator[Value]:
        raise NotImplementedError


class SortedSpool(_Runs[int]):
    """Collects signed 64-bit ints; memory holds one run, the others are sorted runs in a temporary file."""

    def __init__(self, run: int = RUN) -> None:
        super().__init__(run)

    def add(self, value: int) -> None:
        self.pending.append(value)
        self._added()

    def _write_run(self) -> None:
        self.pending.sort()
        array(WORD, self.pending).tofile(self.file)

    def _read(self, offset: int, count: int) -> Iterator[int]:
        for start in range(0, count, READ):
            yield from _words(self.file, offset + start * 8, min(READ, count - start))


class IndexedHashes(_Runs[tuple[int, int]]):
    """Key hashes of records 0, 1, 2, … (in the order added), read back as (hash, index) sorted by hash and,
    for one hash, by index. Each run in the file is its hashes, then their indexes."""

    def __init__(self, run: int = RUN // 4) -> None:
        """``run``: shorter runs than SortedSpool's, because a run is sorted by key (an index list, read back
        in hash order): 2**16 kept that in cache and cost 20 % less than 2**18 (1M rows, tests in the note)."""
        super().__init__(run)
        self.first = 0  # index of the first pending hash

    def extend(self, hashes: Iterable[int]) -> None:
        self.pending.extend(hashes)
        self._added()

    def _write_run(self) -> None:
        order = sorted(range(len(self.pending)), key=self.pending.__getitem__)  # stable: equal hashes keep order
        array(WORD, list(map(self.pending.__getitem__, order))).tofile(self.file)  # from a list: no per-item append
        array(WORD, list(map(self.first.__add__, order))).tofile(self.file)
        self.first += len(self.pending)

    def _read(self, offset: int, count: int) -> Iterator[tuple[int, int]]:
        for start in range(0, count, READ):
            size = min(READ, count - start)
            hashes = _words(self.file, offset + start * 8, size)
            yield from zip(hashes, _words(self.file, offset + (count + start) * 8, size), strict=True)


def _words(file: IO[bytes], offset: int, count: int) -> array[int]:
    """``count`` 64-bit words at ``offset`` (runs share a file: every read seeks first)."""
    file.seek(offset)
    block: array[int] = array(WORD)
    block.frombytes(file.read(count * 8))
    return block


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
