"""Sets of user keys too large for memory: key hashes kept as sorted runs in a temporary file.

An inbound run finds the rows whose key repeats later in the source. A source can have tens of
millions of keys, so they are not held in memory: hashes are spooled to disk in sorted runs, each
run cut into BINS bins by value (the hash's top bits); they are read back a partition at a time —
consecutive bins, every run's slice of them merged by one sort — and each step over a partition is
a C loop (``sorted``, ``map(eq)``, ``compress``), not a Python statement per key.

A key's hash is a float: Python's own str hash (SipHash, 64 bits, the same for the same key within
one process) rounded to a double. Floats because CPython sorts them about twice as fast as 64-bit
ints (a million hashes in runs of 2**18: 0.17 s against 0.30 s). Equal keys get equal hashes;
two different keys share one with a chance of about 1 in 2**53, so among 10M keys a shared hash
turns up about once in 180 runs: harmless for duplicates (rows whose hashes are equal are compared
by their keys).
"""

from __future__ import annotations

import heapq
import os
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from itertools import compress, islice
from operator import eq
from types import TracebackType
from typing import IO, Generic, Self, TypeVar

RUN = 1 << 18  # values sorted in memory at a time: 2 MiB of them
READ = 1 << 13  # values read back per run at a time during a merge
BINS = 256  # a run is cut into bins by the hash's top 8 bits
BOUNDS = [float((edge - BINS // 2) << 56) for edge in range(1, BINS)]  # where bins 1 … BINS-1 start
PARTITION = 1 << 18  # hashes of one partition (of all the stores compared), unless one bin holds more
Value = TypeVar("Value")

# 64 bits of a key: Python's string hash (SipHash), the same for the same key within one process, and,
# being the builtin itself, no Python call per key; stored as float(key_hash(key)).
key_hash: Callable[[str], int] = hash


class _Runs(Generic[Value]):
    """Values kept as sorted runs in a temporary file, memory holding the pending one. A subclass says how
    a run is sorted and written (``_write_run``) and read back."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.pending: list[Value] = []
        self.file = tempfile.TemporaryFile(prefix="walkme-dic-keys-")  # noqa: SIM115 - closed by close()
        self.runs: list[tuple[int, int]] = []  # (byte offset, value count) of each sorted run

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

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


class SortedSpool(_Runs[int]):
    """Collects signed 64-bit ints; memory holds one run, the others are sorted runs in a temporary file."""

    def __init__(self, run: int = RUN) -> None:
        super().__init__(run)

    def add(self, value: int) -> None:
        self.pending.append(value)
        self._added()

    def sorted(self) -> Iterator[int]:
        """Every value added, in ascending order (duplicates kept)."""
        self._spill()
        return heapq.merge(*(self._read(offset, count) for offset, count in self.runs))

    def _write_run(self) -> None:
        self.pending.sort()
        array("q", self.pending).tofile(self.file)

    def _read(self, offset: int, count: int) -> Iterator[int]:
        for start in range(0, count, READ):
            yield from _words(self.file, offset + start * 8, min(READ, count - start))


class HashRuns(_Runs[float]):
    """Key hashes (floats), read back a range of bins at a time (:func:`partitions`)."""

    def __init__(self, run: int = RUN) -> None:
        super().__init__(run)
        self.cuts: list[list[int]] = []  # of each run: where each bin starts, then the run's length

    def extend(self, hashes: Iterable[float]) -> None:
        self.pending.extend(hashes)
        self._added()

    def _write_run(self) -> None:
        self.pending.sort()
        self.cuts.append([0, *map(partial(bisect_left, self.pending), BOUNDS), len(self.pending)])
        array("d", self.pending).tofile(self.file)

    def bin_sizes(self) -> list[int]:
        """How many hashes each bin holds (all added values are in the file from here on)."""
        self._spill()
        self.file.flush()
        return [sum(cut[edge + 1] - cut[edge] for cut in self.cuts) for edge in range(BINS)]

    def sorted_bins(self, first: int, end: int) -> list[float]:
        """The hashes of bins ``first`` … ``end - 1``, ascending (call :meth:`bin_sizes` first)."""
        hashes = array("d")
        for (offset, _), cut in zip(self.runs, self.cuts, strict=True):
            hashes.frombytes(os.pread(self.file.fileno(), (cut[end] - cut[first]) * 8, offset + cut[first] * 8))
        return sorted(hashes)  # the runs' slices are sorted already: the sort merges them


def partitions(stores: Sequence[HashRuns], limit: int = PARTITION) -> Iterator[list[list[float]]]:
    """Each store's hashes, ascending, a range of bins at a time: as many consecutive bins as hold at most
    ``limit`` hashes in all the stores together (one bin at least, whatever it holds)."""
    sizes = [sum(column) for column in zip(*(store.bin_sizes() for store in stores), strict=True)]
    for first, end in bin_ranges(sizes, limit):
        yield [store.sorted_bins(first, end) for store in stores]


def bin_ranges(sizes: Sequence[int], limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of bins (first, end) holding at most ``limit`` of ``sizes`` (one bin at least)."""
    first = 0
    while first < BINS:
        end, total = first + 1, sizes[first]
        while end < BINS and total + sizes[end] <= limit:
            total += sizes[end]
            end += 1
        yield first, end
        first = end


def repeated(ascending: list[float]) -> set[float]:
    """The values that occur more than once in ``ascending``."""
    return set(compress(islice(ascending, 1, None), map(eq, ascending, islice(ascending, 1, None))))


def _words(file: IO[bytes], offset: int, count: int) -> array[int]:
    """``count`` 64-bit words at ``offset`` (runs share a file: every read seeks first)."""
    file.seek(offset)
    block: array[int] = array("q")
    block.frombytes(file.read(count * 8))
    return block
