"""Mapping a block of rows at once, column by column: the hot path of both directions.

:meth:`Mapper.map` maps one row (a dict) at a time. A block of rows — CSV cells in header order, or
objects (JSON lines, a query, the WalkMe export) — is mapped here column by column instead: while a
column's values have their common shape (non-empty text; for numbers decimal digits, for dates
YYYY-MM-DD, for booleans a known word), the per-value work runs in C loops (``str.strip``,
``str.isdecimal``, ``int``, ``date.fromisoformat``, dict lookups, ``orjson.dumps``) rather than in a
Python call per value; a column with other values is converted value by value by the very
converters :class:`Mapper` uses. A row with a value those converters refuse is mapped again by
:meth:`Mapper.map`, so its rejection reads word for word as it would row by row.

Inbound, each record comes out as the JSON bytes ``orjson.dumps`` gives for :meth:`Mapper.map`'s
dict. The block's records are built as one text, encoded to UTF-8 once: a value whose JSON is its
text (a number, a boolean) or its text in quotes (text with no '"', '\\' or control character, the
only characters JSON escapes) is not encoded value by value. Outbound to a CSV file, each record
comes out as the row of :meth:`Mapper.columns` values the encoder writes. ``tests/unit/test_columns.py``
holds both paths to that, for classes of values. A mapping whose destination names collide, or a
CSV header without a mapped column, goes row by row.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from datetime import date
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from walkme_dic.sync.mapping import FALSE, TRUE, Mapper, RowError, TextLimit, lookup
from walkme_dic.sync.readers import Block, Rejected

ISO_DAYS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:\n[0-9]{4}-[0-9]{2}-[0-9]{2})*")  # _date's own shape, a line each
ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what JSON (orjson) escapes in a string: the rest is written as it is
JSON_BOOLEAN = {True: "true", False: "false"}
BOOLEAN_TEXT = {**dict.fromkeys(TRUE, True), **dict.fromkeys(FALSE, False)}
EXACT_DIGITS = 15  # up to 15 decimal digits an int is below 2**53, where _number keeps it exact
UNENCODABLE = ("a value holds text that is not Unicode (a lone surrogate such as \\ud800, from a JSON escape or "
               "the file's encoding); WalkMe takes UTF-8 text")


class MappedBlock(NamedTuple):
    """What a block mapped to: the row ``numbers`` of the records, with their keys and encoded records; and
    the rows refused, with the reason."""

    numbers: list[int]
    keys: list[str]
    records: bytes  # each record's JSON followed by a newline (JSON has none inside)
    refused: list[Rejected]


class _RowByRow(NamedTuple):
    """A block being mapped one row at a time."""

    numbers: list[int]
    keys: list[str]
    lines: list[bytes]  # a record's JSON and a newline
    refused: list[Rejected]

    def mapped(self) -> MappedBlock:
        return MappedBlock(self.numbers, self.keys, b"".join(self.lines), self.refused)


class Table(NamedTuple):
    """What a block mapped to as the columns of a table (:meth:`Mapper.columns`: the records' values, None
    where a record has none), and the rows refused, with the reason."""

    columns: list[list[Any]]
    refused: list[Rejected]


class Column(NamedTuple):
    """One mapped column of a block: the converted values (None where a record leaves the value out), and
    ``whole`` when none is None (the common case, which needs no look at each value)."""

    values: list[Any]
    whole: bool


class Converted(NamedTuple):
    """A block's mapped values column by column, and the positions of the rows a converter refused."""

    key: Column
    fields: list[Column]
    active: Column | None
    refused: set[int]


def map_block(mapper: Mapper, block: Block) -> MappedBlock:
    """The block's records, encoded as JSON; column by column when a plan fits (see :meth:`ColumnPlan.fitting`)."""
    plan = ColumnPlan.fitting(mapper, block.header)
    if plan is not None:
        try:
            return plan.encode(block.numbers, block.rows)
        except (orjson.JSONEncodeError, UnicodeEncodeError):  # text UTF-8 cannot carry (a lone surrogate): row by
            pass  # row names the rows
    mapped = _RowByRow([], [], [], [])
    for number, row in zip(block.numbers, block.rows, strict=True):
        _map_row(mapper, number, _as_dict(block.header, row), mapped)
    return mapped.mapped()


def tabulate(mapper: Mapper, block: Block) -> Table:
    """The block's records as rows of :meth:`Mapper.columns` values; column by column when a plan fits."""
    plan = ColumnPlan.fitting(mapper, block.header)
    if plan is not None:
        return plan.table(block.numbers, block.rows)
    records, refused = [], []
    for number, row in zip(block.numbers, block.rows, strict=True):
        try:
            records.append(mapper.map(_as_dict(block.header, row)))
        except RowError as error:
            refused.append(Rejected(number, str(error)))
    return Table([[record.get(name) for record in records] for name in mapper.columns()], refused)


def _as_dict(header: list[str] | None, row: Any) -> dict[str, Any]:
    return row if header is None else dict(zip(header, row, strict=True))


def _map_row(mapper: Mapper, number: int, values: dict[str, Any], mapped: _RowByRow) -> None:
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
    mapped.lines.append(encoded + b"\n")


class ColumnPlan:
    """Where each mapped column's values are in a block's rows, and what they become."""

    def __init__(self, mapper: Mapper, header: list[str] | None) -> None:
        self.mapper, self.header = mapper, header
        self.key = self._extractor(mapper.key_source)
        self.key_prefix = "{" + _json(mapper.key_name) + ":"
        self.copy_prefix = "," + _json(mapper.mapping.key.destination) + ":" if mapper.key_copy else None
        self.fields = [(self._extractor(f.source), f.type, f.source, "," + _json(f.destination) + ":",
                        mapper.mapping.clears(f)) for f in mapper.fields]
        self.active = (self._extractor(mapper.active), "," + _json(mapper.active) + ":", mapper.active) \
            if mapper.active else None

    @staticmethod
    def fitting(mapper: Mapper, header: list[str] | None) -> ColumnPlan | None:
        """A plan when every destination name is distinct (else a record's dict could hold fewer names than
        the columns: that is Mapper.map's to decide) and, for CSV, every mapped column is in ``header``."""
        if header is not None and not all(column in header for column in mapper.required_columns()):
            return None
        names = [mapper.key_name, *([mapper.mapping.key.destination] if mapper.key_copy else []),
                 *(f.destination for f in mapper.fields), *([mapper.active] if mapper.active else [])]
        return ColumnPlan(mapper, header) if len(set(names)) == len(names) else None

    def _extractor(self, column: str) -> Callable[[list[Any]], list[Any]]:
        """The values of ``column`` in a block's rows (CSV: a cell; objects: a key, or a dotted path)."""
        if self.header is not None:
            cell = itemgetter(self.header.index(column))
            return lambda rows: list(map(cell, rows))
        if "." in column:
            return lambda rows: list(map(lookup, rows, repeat(column)))
        return lambda rows: list(map(dict.get, rows, repeat(column)))

    def convert(self, rows: list[Any]) -> Converted:
        refused: set[int] = set()  # positions in the block of rows a converter refused
        texts = self.header is not None  # CSV cells are str: their types need no look
        mapper = self.mapper
        key = _converted(self.key(rows), "string", mapper.key_source, refused, texts=texts, convert=mapper.key_text,
                         limit=mapper.key_limit, trims=mapper.trims)
        if self.mapper.case_fold:
            key = Column([None if k is None else k.casefold() for k in key.values], key.whole)
        fields = [_converted(extract(rows), kind, source, refused, texts=texts, convert=convert,
                             limit=mapper.value_limit, trims=trims)
                  for (extract, kind, source, *_), convert, trims in zip(self.fields, mapper.field_converters,
                                                                          mapper.field_trims, strict=True)]
        active = None
        if self.active is not None:
            extract, _, source = self.active
            active = _converted(extract(rows), "boolean", source, refused, texts=texts,
                                convert=mapper.converters["boolean"], limit=None)
        for column in (key, active):  # an empty key or active value refuses the row
            if column is not None and not column.whole:
                refused.update(position for position, value in enumerate(column.values) if value is None)
        if active is not None:  # WalkMe has no Boolean type: the active column is the String "true" or "false"
            active = Column(list(map(JSON_BOOLEAN.get, active.values)), active.whole)
        return Converted(key, fields, active, refused)

    def encode(self, numbers: list[int], rows: list[Any]) -> MappedBlock:
        """The block's records as JSON, each the bytes ``orjson.dumps`` gives for :meth:`Mapper.map`'s dict."""
        key, fields, active, refused = self.convert(rows)
        keys = key.values
        key_json = _pieces(key if key.whole else Column(["" if k is None else k for k in keys], whole=True), "")
        pieces: list[Any] = [repeat(self.key_prefix), *key_json]
        if self.copy_prefix is not None:
            pieces += [repeat(self.copy_prefix), *key_json]
        for column, (*_, prefix, clear) in zip(fields, self.fields, strict=True):
            pieces += _pieces(column, prefix, clear=clear)
        if self.active is not None and active is not None:
            pieces += _pieces(active, self.active[1])
        if not refused:
            pieces.append(repeat("}\n"))
            text = "".join(map("".join, zip(*pieces, strict=False)))  # as long as the keys (the repeats are endless)
            return MappedBlock(numbers, keys, text.encode(), [])
        pieces.append(repeat("}"))
        records = list(map("".join, zip(*pieces, strict=False)))
        mapped = _RowByRow([], [], [], [])
        for position, record in enumerate(records):  # rows a converter refused: again by Mapper.map, for the reason
            if position in refused:
                _map_row(self.mapper, numbers[position], _as_dict(self.header, rows[position]), mapped)
                continue
            mapped.numbers.append(numbers[position])
            mapped.keys.append(keys[position])
            mapped.lines.append(record.encode() + b"\n")
        return mapped.mapped()

    def table(self, numbers: list[int], rows: list[Any]) -> Table:
        """The block's records as the columns of :meth:`Mapper.columns` (the key, then the fields)."""
        key, fields, _, refused = self.convert(rows)
        keys = key.values
        if not refused:
            return Table([keys, *(field.values for field in fields)], [])
        table = Table([], [])
        redone: dict[int, dict[str, Any]] = {}
        for position in sorted(refused):  # again by Mapper.map, for the reason
            try:
                redone[position] = self.mapper.map(_as_dict(self.header, rows[position]))
            except RowError as error:
                table.refused.append(Rejected(numbers[position], str(error)))
        kept = [position for position in range(len(rows)) if position not in refused or position in redone]
        for values, name in zip((keys, *(field.values for field in fields)), self.mapper.columns(), strict=True):
            for position, record in redone.items():
                values[position] = record.get(name)
            table.columns.append(list(map(values.__getitem__, kept)))
        return table


def _converted(values: list[Any], kind: str, column: str, refused: set[int], *, texts: bool,
               convert: Callable[[Any, str], Any], limit: TextLimit | None, trims: bool = True) -> Column:
    """One column's values as ``kind`` (None where empty) by ``convert``, the mapper's converter; positions of
    values it refuses go to ``refused``. Text of the common shape (for strings: within ``limit``) is converted by
    C loops; anything else value by value. ``texts``: every value is a str (CSV cells); ``trims``: the mapper
    trims text (else a string column's non-blank texts are its values as they are)."""
    if texts or set(map(type, values)) == {str}:  # CSV cells always, JSON mostly
        stripped = list(map(str.strip, values))
        if all(stripped) and (kind != "string" or limit is None or limit.fits(stripped)):
            common = _common_shape(stripped if trims or kind != "string" else values, kind)
            if common is not None:
                return Column(common, whole=True)
    converted = []
    for position, value in enumerate(values):
        try:
            converted.append(convert(value, column))
        except RowError:
            refused.add(position)
            converted.append(None)
    return Column(converted, whole=False)


def _common_shape(stripped: list[str], kind: str) -> list[Any] | None:
    """Non-empty stripped texts as ``kind`` when all have the shape the converter takes most often, else None."""
    if kind == "string":
        return stripped
    if kind == "number" and all(map(str.isdecimal, stripped)) and max(map(len, stripped)) <= EXACT_DIGITS:
        return list(map(int, stripped))
    if kind == "date" and _iso_days(stripped) and _all_days(stripped):
        return stripped
    if kind == "boolean":
        flags = list(map(BOOLEAN_TEXT.get, map(str.lower, stripped)))
        return flags if None not in flags else None
    return None


def _pieces(column: Column, prefix: str, *, clear: bool = False) -> list[Any]:
    """One column's share of each record, as text: its '"name":' prefix (repeated) and the value's JSON, or
    one '"name":value' piece where the value is None: "" (the record leaves the name out), or with ``clear``
    '"name":null'."""
    if not column.whole:
        empty = prefix + "null" if clear else ""
        return [[empty if value is None else prefix + _json(value) for value in column.values]]
    values = column.values
    if not values or isinstance(values[0], str):  # a whole column holds values of one type (_common_shape)
        if ESCAPED.search("".join(values)):
            return [repeat(prefix), list(map(_json, values))]
        return [repeat(prefix + '"'), values, repeat('"')]
    if isinstance(values[0], bool):
        return [repeat(prefix), list(map(JSON_BOOLEAN.__getitem__, values))]
    return [repeat(prefix), list(map(str, values))]  # ints: their JSON is their decimal text


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _iso_days(texts: list[str]) -> bool:
    """Every text is YYYY-MM-DD in ASCII digits: one match over the column, a line a text (a text that holds a
    newline itself passes here, and is refused by ``date.fromisoformat``, which :func:`_all_days` asks next)."""
    return ISO_DAYS.fullmatch("\n".join(texts)) is not None


def _all_days(texts: list[str]) -> bool:
    try:
        deque(map(date.fromisoformat, texts), maxlen=0)
    except ValueError:
        return False
    return True
