"""The small interface every connector shares: probe, open for read, open for write.

Here: probes and file stores (S3, Azure Blob, GCS, SFTP); the record sources and destinations (WalkMe,
Salesforce, webhooks) are in connectors/records.py. Connectors hold no Kubernetes and no mapping logic.
Credentials arrive as a ``Credentials`` mapping (Secret key -> value) read from files by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

Credentials = Mapping[str, str]


@dataclass(frozen=True)
class ProbeResult:
    """A successful probe; failures raise walkme_dic.errors.DicError subclasses."""

    message: str


@dataclass(frozen=True)
class Limits:
    """How long one network operation may take and how many attempts a call gets. A probe builds its client
    with these (the probe timeout, two attempts) so that no connect, read or retry loop outlives the probe by
    much; runs keep each client's own defaults (minutes of retries ride out a provider's bad minute)."""

    timeout: float
    attempts: int = 2

    @property
    def connect_timeout(self) -> float:
        return min(10.0, self.timeout)


@dataclass(frozen=True)
class ObjectInfo:
    """What a file store knows about one object."""

    path: str
    size: int
    fingerprint: str
    modified: datetime | None = None  # known from a listing (ListingStore.list)


BINARY = "application/octet-stream"


class AtomicWriter(Protocol):
    """Bytes written are invisible until commit(); abort() leaves nothing behind."""

    def write(self, data: bytes) -> int: ...

    def commit(self) -> ObjectInfo: ...

    def abort(self) -> None: ...


class FileStore(Protocol):
    """S3 or Azure Blob, paths relative to the Connection's prefix."""

    def probe(self) -> ProbeResult: ...

    def describe(self, path: str) -> str:
        """Where ``path`` lives, for humans: s3://bucket/key or the blob URL."""
        ...

    def stat(self, path: str) -> ObjectInfo: ...

    def open_read(self, path: str) -> BinaryIO: ...

    def open_write(self, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                   part_size: int | None = None) -> AtomicWriter:
        """A writer for ``path``; with ``overwrite=False`` commit() raises DestinationExistsError rather than
        replace an object that exists (atomically where the store has a create-only condition). Stores with
        object metadata (S3, Azure, GCS) record ``content_type``; SFTP has none. ``part_size``: for a writer that
        must stay small in memory, the bytes of each part it holds while it uploads (S3 parts, at least 5 MiB;
        Azure blocks; GCS chunks, rounded up to 256 KiB), one on the wire at a time; None: the store's own,
        sized for throughput. SFTP holds no parts."""
        ...


class ListingStore(FileStore, Protocol):
    """A store that lists its objects (S3, Azure Blob, GCS: where WalkMe's Data Integration Center exports)."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose path starts with ``prefix`` (paths and ``prefix`` under the Connection's prefix),
        with its last-modified time."""
        ...
