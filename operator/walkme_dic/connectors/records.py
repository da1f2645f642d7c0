"""Records in and out: the interface the sync engine reads records through and writes them through.

A :class:`RecordSource` is an export: its records page by page (``pages()``), where record ``n`` came from
(``label(n)``) and, once read, the ``watermark`` the next run starts from. WalkMe's Insights export and activity
log (connectors/walkme.py) and WalkMe's export files (sync/export_files.py) are :class:`PagedRecords`, which
fetches pages ahead of the reader. A :class:`RecordDestination` takes records in one ``write(records, report)``:
WalkMe user attributes (connectors/walkme.py ``UserAttributes``), a Salesforce object (connectors/salesforce.py
``SalesforceObject``, a :class:`KeyedDestination`) and a webhook (connectors/webhook.py ``WebhookReceiver``). A
:class:`QuerySource` is what an inbound SOQL read needs of Salesforce. connectors/registry.py opens each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar

BATCH = 100  # WalkMe user objects per upsert call (WalkMe takes at most 100)
PREFETCH_PAGES = 3  # export pages fetched ahead of the caller: the source keeps serving while the caller uploads
Record = dict[str, Any]
EncodedBatch = list[tuple[int, bytes]]  # (spool index, encoded user object), at most BATCH of them
Page = dict[str, Any]  # {"data": [records], "watermark": where the next run starts, once this page is read}
R_contra = TypeVar("R_contra", contravariant=True)


def record_label(number: int) -> str:
    """An export's record, for a rejection: "record 7"."""
    return f"record {number}"


@dataclass
class WriteReport:
    """Outcome of writing records to a destination (WalkMe, Salesforce, a webhook)."""

    written: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index in input, reason)
    api_calls: int = 0
    batches: int = 0  # requests that carried records (a webhook's POSTs)
    bytes: int = 0  # of the bodies sent (a webhook's)

    def add(self, other: WriteReport) -> WriteReport:
        """This report with ``other`` (a batch's, a write's) added to it."""
        self.written += other.written
        self.failed += other.failed
        self.api_calls += other.api_calls
        self.batches += other.batches
        self.bytes += other.bytes
        return self


class Pages(Protocol):
    """An export's records page by page, in order; ``close()`` (or leaving the ``with`` block) reads no more."""

    def __enter__(self) -> Pages: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def __iter__(self) -> Iterator[list[Record]]: ...

    def close(self) -> None: ...


class RecordSource(Protocol):
    """The records of one export; ``watermark`` is known once they are read."""

    watermark: str | None

    def pages(self) -> Pages:
        """The records page by page; reading starts now, so a caller can set up its destination meanwhile."""
        ...

    def label(self, number: int) -> str:
        """Where record ``number`` (from 1) came from, for a rejection."""
        ...

    def __iter__(self) -> Iterator[Record]: ...


class RecordDestination(Protocol[R_contra]):
    """Where records go: ``R_contra`` is a record (Salesforce, a webhook) or an :data:`EncodedBatch` (WalkMe user
    attributes, from the inbound spool)."""

    def write(self, records: Iterable[R_contra], report: WriteReport) -> WriteReport:
        """Send ``records``, adding to ``report`` (and returning it) what was written and what refused, by input
        index; when the write raises, ``report`` says how far it had come."""
        ...


class KeyedDestination(RecordDestination[Record], Protocol):
    """A destination that matches records by ``key`` (Salesforce: Id, or the external id; None: inserts): of the
    records with one key only the last may be sent."""

    @property
    def key(self) -> str | None: ...

    def case_sensitive(self) -> bool:
        """Whether the destination tells key ``ABC`` from ``abc`` (it may ask the destination)."""
        ...


class QuerySource(Protocol):
    """A system read by query (Salesforce SOQL) for an inbound run."""

    def query(self, text: str) -> Iterator[dict[str, object]]: ...

    def covered_until(self, lookback_seconds: int) -> datetime:
        """Where an incremental read ends: changes stamped before this time have committed."""
        ...


class PagedRecords:
    """A :class:`RecordSource` whose pages come from ``fetch()`` (pages as :data:`Page`)."""

    def __init__(self, fetch: Callable[[], Iterator[Page]]) -> None:
        self.fetch = fetch
        self.watermark: str | None = None

    def label(self, number: int) -> str:
        return record_label(number)

    def __iter__(self) -> Iterator[Record]:
        with self.pages() as pages:
            for records in pages:
                yield from records

    def pages(self) -> PrefetchedPages:
        return PrefetchedPages(self)


class PrefetchedPages:
    """Pages of :class:`PagedRecords`, in order. Fetching starts when this is made: up to PREFETCH_PAGES are
    fetched ahead while the caller works through the current one (one fetching thread: each page may need the
    previous page's cursor). ``close()`` (or leaving the ``with`` block) fetches nothing more."""

    def __init__(self, export: PagedRecords) -> None:
        self.export = export
        self.source = export.fetch()
        self.fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="walkme-export")
        self.upcoming = deque(self.fetcher.submit(next, self.source, None) for _ in range(PREFETCH_PAGES))

    def __enter__(self) -> PrefetchedPages:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[list[Record]]:
        while (page := self.upcoming.popleft().result()) is not None:
            self.upcoming.append(self.fetcher.submit(next, self.source, None))
            yield page.get("data", [])
            self.export.watermark = page.get("watermark") or self.export.watermark

    def close(self) -> None:
        for pending in self.upcoming:
            pending.cancel()
        self.fetcher.shutdown(wait=True)  # a page on the wire is let finish
