"""Keys repeated in one outbound run to a record store: the last record of each key wins, the others are counted.

Salesforce refuses a key repeated within one call or Bulk batch ("Duplicate external id specified",
"Duplicate id specified") and applies copies in different batches each, in no set order, so an
earlier, stale record can win. The run's records are therefore spooled (sync/spool.py, the store
inbound uses for the same rule) and sent only once every key's last record is known. Records with
no key value are never merged with each other. An external id matches as its field compares: case-insensitively
(Salesforce's default: ``ABC`` and ``abc`` are one record) unless the field is Unique and "case sensitive"
(describe's ``caseSensitive``; the caller asks the org); an Id by its case-sensitive first 15 characters (the
18-character form adds a checksum).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from walkme_dic.api.run import DuplicateRow
from walkme_dic.sync.spool import InboundSpool

BLOCK = 1024  # records spooled at a time


class LastRowWins:
    """``records`` (numbered from 1 in order) with only the last of each ``key`` value; ``sent`` after
    iterating: the number of each record handed out, by position, so a refusal names its record."""

    def __init__(self, records: Iterable[dict[str, Any]], key: str, spool: InboundSpool, *,
                 case_sensitive: bool = False) -> None:
        self.spool = spool
        self.sent = array("q")
        iterator = iter(records)
        number = 0
        while block := list(islice(iterator, BLOCK)):
            numbers = list(range(number + 1, number + 1 + len(block)))
            keys = [_key(record, key, n, case_sensitive) for record, n in zip(block, numbers, strict=True)]
            lines = "".join(json.dumps(record, default=_plain, ensure_ascii=False) + "\n" for record in block)
            spool.add(numbers, keys, lines.encode())
            number += len(block)
        spool.resolve()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.spool.batches(BLOCK):
            for index, line in batch:
                self.sent.append(self.spool.rows.of(index))
                yield json.loads(line)

    def number(self, position: int) -> int:
        """The record number of the ``position``-th record sent (from 0)."""
        return self.sent[position]

    @property
    def left_out(self) -> int:
        return self.spool.duplicates.count

    def samples(self) -> list[DuplicateRow]:
        return [DuplicateRow(row=row, replaced_by=later) for row, later in self.spool.duplicates.samples]


def _key(record: dict[str, Any], key: str, number: int, case_sensitive: bool) -> str:
    """The record's key value (field names are case-insensitive in Salesforce), or one of its own."""
    value = record.get(key)
    if value is None:
        value = next((v for k, v in record.items() if k.lower() == key.lower()), None)
    if value in (None, ""):
        return f"\x00{number}"
    if key.lower() == "id":
        return str(value)[:15]
    return str(value) if case_sensitive else str(value).lower()


def _plain(value: object) -> object:
    """JSON for what a mapped record may hold besides JSON's own types, as the writers send it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
