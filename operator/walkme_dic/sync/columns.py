"""Mapping a block of rows at once: the inbound hot path, column by column for CSV.

:meth:`Mapper.map` maps one row (a dict) at a time. A block of CSV rows (cells in header order) is
mapped here column by column instead: while a column's values have their common shape, the
per-value work runs in C loops (``str.strip``, ``str.isdecimal``, ``int``, ``date.fromisoformat``,
dict lookups, ``orjson.dumps``) rather than in a Python call per value; a column that has another
shape is converted value by value with the very converters :class:`Mapper` uses. A row with a
value those converters refuse is mapped again by :meth:`Mapper.map`, so its rejection reads word
for word as it would row by row. Each record comes out as the JSON bytes ``orjson.dumps`` gives
for :meth:`Mapper.map`'s dict (``tests/unit/test_columns.py`` holds the two paths to that).

Blocks of objects (JSON lines, a query), and CSV blocks a plan cannot map (a mapped column
missing from the header, a dotted path), go row by row through :meth:`Mapper.map`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from datetime import date
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from walkme_dic.sync.mapping import CONVERTERS, FALSE, TRUE, Mapper, RowError
from walkme_dic.sync.readers import Block, Rejected

ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # the shape _date hands back unchanged
BOOLEAN_TEXT = {**dict.fromkeys(TRUE, True), **dict.fromkeys(FALSE, False)}
EXACT_DIGITS = 15  # up to 15 decimal digits an int is below 2**53, where _number keeps it exact
UNENCODABLE = ("a value holds text that is not Unicode (a lone surrogate such as \\ud800, from a JSON escape or "
               "the file's encoding); WalkMe takes UTF-8 text")
Fragments = list[bytes]  # one column's '"name":value' pieces (b"" for an omitted value), one per row


class MappedBlock(NamedTuple):
    """What a block mapped to: the row ``numbers`` of the records, with their keys and encoded records; and
    the rows refused, with the reason."""

    numbers: list[int]
    keys: list[str]
    records: list[bytes]
    refused: list[Rejected]


def map_block(mapper: Mapper, block: Block) -> MappedBlock:
    """The block's records, encoded; column by column where the block's header has every mapped column."""
    plan = ColumnPlan.fitting(mapper, block.header)
    if plan is not None:
        try:
            return plan.map(block.numbers, block.rows)
        except orjson.JSONEncodeError:  # text JSON cannot carry (a lone surrogate): row by row names the rows
            pass
    mapped = MappedBlock([], [], [], [])
    for number, values in zip(block.numbers, block.rows, strict=True):
        _map_row(mapper, number, values if block.header is None else dict(zip(block.header, values, strict=True)),
                 mapped)
    return mapped


def _map_row(mapper: Mapper, number: int, values: dict[str, Any], mapped: MappedBlock) -> None:
    """Row ``number`` through :meth:`Mapper.map`, added to ``mapped`` as a record or a refusal."""
    try:
        record = mapper.map(values)
        encoded = orjson.dumps(record)
    except RowError as error:
        mapped.refused.append(Rejected(number, str(error)))
        return
    except orjson.JSONEncodeError:
        mapped.refused.append(Rejected(number, UNENCODABLE))
        return
    mapped.numbers.append(number)
    mapped.keys.append(record[mapper.key_name])
    mapped.records.append(encoded)


class ColumnPlan:
    """Which cells of a header's rows become which fragments of a record, and how they are converted."""

    def __init__(self, mapper: Mapper, header: list[str]) -> None:
        self.mapper, self.header = mapper, header
        index = {name: position for position, name in enumerate(header)}
        self.key = index[mapper.key_source]
        self.key_prefix = b"{" + orjson.dumps(mapper.key_name) + b":"
        self.copy_prefix = b"," + orjson.dumps(mapper.mapping.key.destination) + b":" if mapper.key_copy else None
        self.fields = [(index[f.source], b"," + orjson.dumps(f.destination) + b":", f.type, f.source)
                       for f in mapper.fields]
        self.active = (index[mapper.active], b"," + orjson.dumps(mapper.active) + b":", mapper.active) \
            if mapper.active else None

    @staticmethod
    def fitting(mapper: Mapper, header: list[str] | None) -> ColumnPlan | None:
        """A plan when every mapped column is a column of ``header`` and every destination name is distinct
        (else a record's dict could hold fewer names than the columns: that is Mapper.map's to decide)."""
        if header is None or not all(column in header for column in mapper.required_columns()):
            return None
        names = [mapper.key_name, *([mapper.mapping.key.destination] if mapper.key_copy else []),
                 *(f.destination for f in mapper.fields), *([mapper.active] if mapper.active else [])]
        return ColumnPlan(mapper, header) if len(set(names)) == len(names) else None

    def map(self, numbers: list[int], rows: list[list[str]]) -> MappedBlock:
        if not rows:
            return MappedBlock([], [], [], [])
        refused: set[int] = set()  # positions in the block of rows a converter refused
        keys = list(map(str.strip, map(itemgetter(self.key), rows)))
        if not all(keys):
            refused.update(position for position, key in enumerate(keys) if not key)
        encoded_keys = list(map(orjson.dumps, keys))
        pieces: list[Any] = [list(map(self.key_prefix.__add__, encoded_keys))]
        if self.copy_prefix is not None:
            pieces.append(list(map(self.copy_prefix.__add__, encoded_keys)))
        for column, prefix, kind, source in self.fields:
            pieces.append(_fragments(list(map(itemgetter(column), rows)), kind, source, prefix, refused))
        if self.active is not None:
            column, prefix, source = self.active
            active = _fragments(list(map(itemgetter(column), rows)), "boolean", source, prefix, refused)
            if not all(active):  # an empty active value refuses the row
                refused.update(position for position, fragment in enumerate(active) if not fragment)
            pieces.append(active)
        pieces.append(repeat(b"}"))
        records = list(map(b"".join, zip(*pieces, strict=False)))  # repeat(b"}") is endless
        if not refused:
            return MappedBlock(numbers, keys, records, [])
        mapped = MappedBlock([], [], [], [])
        for position, record in enumerate(records):  # rows a converter refused: again by Mapper.map, for the reason
            if position in refused:
                _map_row(self.mapper, numbers[position], dict(zip(self.header, rows[position], strict=True)), mapped)
                continue
            mapped.numbers.append(numbers[position])
            mapped.keys.append(keys[position])
            mapped.records.append(record)
        return mapped


def _fragments(values: Sequence[str], kind: str, column: str, prefix: bytes, refused: set[int]) -> Fragments:
    """One mapped column as fragments (b"" where the value is empty: the record leaves it out)."""
    stripped = list(map(str.strip, values))
    if all(stripped):
        if kind == "string":
            return list(map(prefix.__add__, map(orjson.dumps, stripped)))
        if kind == "number" and all(map(str.isdecimal, stripped)) and max(map(len, stripped)) <= EXACT_DIGITS:
            return list(map(prefix.__add__, map(orjson.dumps, map(int, stripped))))
        if kind == "date" and all(map(ISO_DAY.fullmatch, stripped)) and _all_days(stripped):
            return list(map(prefix.__add__, map(orjson.dumps, stripped)))
        if kind == "boolean":
            flags = list(map(BOOLEAN_TEXT.get, map(str.lower, stripped)))
            if None not in flags:
                return list(map({True: prefix + b"true", False: prefix + b"false"}.__getitem__, flags))
    return _one_by_one(stripped, CONVERTERS[kind], column, prefix, refused)


def _all_days(texts: list[str]) -> bool:
    try:
        deque(map(date.fromisoformat, texts), maxlen=0)
    except ValueError:
        return False
    return True


def _one_by_one(stripped: list[str], convert: Callable[[Any, str], Any], column: str, prefix: bytes,
                refused: set[int]) -> Fragments:
    fragments: Fragments = []
    for position, text in enumerate(stripped):
        try:
            value = convert(text, column)
        except RowError:
            refused.add(position)
            value = None
        fragments.append(b"" if value is None else prefix + orjson.dumps(value))
    return fragments
