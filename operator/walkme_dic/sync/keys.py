"""Sets of user keys too large for memory: 64-bit hashes kept as sorted runs in a temporary file.

An inbound run counts the users WalkMe keeps although the source no longer has them. Both sides
can have tens of millions of keys, so neither is held in memory: each side is spooled to disk in
sorted runs, read back as one sorted stream (a k-way merge), and the two streams are joined.
"""

from __future__ import annotations

import hashlib
import heapq
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from types import TracebackType

RUN = 1 << 18  # keys sorted in memory at a time: 2 MiB of hashes
READ = 1 << 13  # keys read back per run at a time during the merge


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class SpooledKeys:
    """Collects key hashes; memory holds one run, the others are sorted runs in a temporary file."""

    def __init__(self, run: int = RUN) -> None:
        self.run = run
        self.pending: array[int] = array("Q")
        self.file = tempfile.TemporaryFile(prefix="walkme-dic-keys-")  # noqa: SIM115 - closed by __exit__
        self.runs: list[tuple[int, int]] = []  # (byte offset, key count) of each sorted run

    def __enter__(self) -> SpooledKeys:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.file.close()

    def add(self, key: str) -> None:
        self.pending.append(key_hash(key))
        if len(self.pending) >= self.run:
            self._spill()

    def sorted(self) -> Iterator[int]:
        """Every hash added, in ascending order (duplicates kept)."""
        self._spill()
        return heapq.merge(*(self._read(offset, count) for offset, count in self.runs))

    def _spill(self) -> None:
        if not self.pending:
            return
        self.file.seek(0, 2)
        self.runs.append((self.file.tell(), len(self.pending)))
        array("Q", sorted(self.pending)).tofile(self.file)
        self.pending = array("Q")

    def _read(self, offset: int, count: int) -> Iterator[int]:
        for start in range(0, count, READ):
            self.file.seek(offset + start * 8)  # runs share the file: seek before every read
            block: array[int] = array("Q")
            block.frombytes(self.file.read(min(READ, count - start) * 8))
            yield from block


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
