"""Mapping source rows to destination records with typed coercion (pure functions).

Inbound, text is held to what WalkMe is assumed to take (docs/walkme-api.md, A10): a key of at most
MAX_KEY_LENGTH characters without control characters, a value of at most MAX_VALUE_LENGTH characters
without control characters other than tab and line ends. A row that breaks one is rejected naming the
column, the limit and (for a control character) which one and where; the rest of the file is imported.

Outbound to a file, values are written as they are (:data:`FILE_CONVERTERS`): text untrimmed, empty text
kept apart from null, an object or array as its JSON text, integers of any size exactly and a number given as
text with its digits (``1.50`` stays ``1.50``).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from walkme_dic.api.integration import FieldMapping, FieldType, Mapping

EXACT_LIMIT = 2**53  # a double holds every integer below it, and no number above it exactly
INT_DIGITS = 4300  # Python's int prints at most this many digits (sys.get_int_max_str_digits); a Decimal, any
MAX_KEY_LENGTH = 512  # characters of a user id (A10)
MAX_VALUE_LENGTH = 8192  # characters of a text value (A10)
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


class RowError(ValueError):
    """Why one row cannot be mapped; the message names the column."""


@dataclass(frozen=True)
class TextLimit:
    """What text WalkMe takes (A10): at most ``length`` characters, none that ``control`` matches."""

    length: int
    control: re.Pattern[str]
    what: str  # "a key", "a value"
    allowed: str  # the control characters it does take, for the message

    def check(self, text: str, column: str) -> str:
        if len(text) > self.length:
            raise RowError(f"column {column!r}: {len(text)} characters, more than the {self.length} {self.what} may "
                           "have in WalkMe")
        found = self.control.search(text)
        if found:
            character = found.group()
            name = unicodedata.name(character, "") or CONTROL_NAMES.get(character, "a control character")
            raise RowError(f"column {column!r}: holds U+{ord(character):04X} {name} at character {found.start() + 1}"
                           f"; {self.what} in WalkMe holds no control characters{self.allowed}")
        return text

    def fits(self, texts: list[str]) -> bool:
        """Whether every text passes :meth:`check` (one look over the column)."""
        return max(map(len, texts), default=0) <= self.length and not self.control.search("".join(texts))


CONTROL_NAMES = {"\x00": "NULL", "\x7f": "DELETE", "\t": "CHARACTER TABULATION", "\n": "LINE FEED",
                 "\r": "CARRIAGE RETURN"}
KEY_LIMIT = TextLimit(MAX_KEY_LENGTH, re.compile(r"[\x00-\x1f\x7f]"), "a key", "")
VALUE_LIMIT = TextLimit(MAX_VALUE_LENGTH, re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"), "a value",
                        " but tab and line ends")


def lookup(values: dict[str, Any], column: str) -> Any:
    """A column, or a dotted path into nested objects (Account.Industry)."""
    if column in values:
        return values[column]
    current: Any = values
    for part in column.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def coerce(value: Any, kind: FieldType, column: str) -> Any:
    """The value as ``kind``; None for empty; RowError naming the column when it does not fit."""
    return CONVERTERS[kind](value, column)


def _string(value: Any, column: str, limit: TextLimit | None = None) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        return (limit.check(text, column) if limit else text) if text else None
    if value is None:
        return None
    if isinstance(value, dict | list):
        kind = "object" if isinstance(value, dict) else "array"
        raise RowError(f"column {column!r}: a JSON {kind} is not text; map one of its fields (column.field) "
                       "or write it as a string in the file")
    return _scalar_text(value, column)


def _scalar_text(value: Any, column: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"column {column!r}: {value!r} is not a value (JSON has no NaN or Infinity)")
    return _as_text(value)


def _text_as_is(value: Any, column: str) -> str | None:
    """Outbound to a file: text untrimmed and empty text as "" (None only for null or absent), an object or an
    array as its compact JSON text, a number or boolean as JSON writes it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _scalar_text(value, column)


def _typed(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """``convert`` applied to the value (stripped when it is text), None for empty."""

    def converter(value: Any, column: str) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
        elif value is None:
            return None
        return convert(value, column)

    return converter


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, column: str) -> int | float:
    if isinstance(value, bool):
        raise RowError(f"column {column!r}: {value!r} is not a number")
    if isinstance(value, str) and value.isdecimal():  # the common case, exact without a float
        value = int(value)
    if isinstance(value, int):
        if abs(value) < EXACT_LIMIT:
            return value
        raise RowError(_too_large(value, column))
    if isinstance(value, float):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise RowError(f"column {column!r}: {value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise RowError(f"column {column!r}: {value!r} is not a finite number")
    if abs(number) >= EXACT_LIMIT:
        raise RowError(_too_large(value, column))
    return int(number) if number.is_integer() else number


def _trimmed_text(value: Any, column: str) -> str | None:
    """:func:`_text_as_is` without the spaces around it (a field's ``trim: true``)."""
    text = _text_as_is(value, column)
    return None if text is None else text.strip()


def _exact_number(value: Any, column: str) -> int | float | Decimal:
    """Outbound to a file, a number as it is: an integer of any size exactly, a number given as text with its
    digits (a Decimal: ``1.50`` stays ``1.50``, ``1e3`` is written ``1E+3``), a JSON fraction as the double it
    was read as (its shortest text: ``0.1`` stays ``0.1``)."""
    if isinstance(value, bool):
        raise RowError(f"column {column!r}: {value!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RowError(f"column {column!r}: {value!r} is not a finite number")
        return value
    text = str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise RowError(f"column {column!r}: {value!r} is not a number") from None
    if "_" in text or not number.is_finite():  # Python's 1_000, NaN and Infinity: no reader's number
        raise RowError(f"column {column!r}: {value!r} is not a finite number")
    return int(number) if text.isdecimal() and len(text) < INT_DIGITS else number


def _too_large(value: Any, column: str) -> str:
    return (f"column {column!r}: {value!r} is beyond ±2^53 (9007199254740992), where WalkMe's Number (a JSON "
            "double) would round it; map the column as type string to keep every digit")


def _boolean(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise RowError(f"column {column!r}: {value!r} is not true or false")


def _date(value: Any, column: str) -> str:
    """YYYY-MM-DD; a timestamp with an offset is the day it is in UTC (23:30 at -05:00 is the next day), one
    without is the day it names."""
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return text if text[4] == "-" and text[7] == "-" else day.isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (moment.astimezone(UTC) if moment.tzinfo else moment).date().isoformat()
    except ValueError:
        raise RowError(f"column {column!r}: {value!r} is not a date (YYYY-MM-DD)") from None


def _timestamp(value: Any, column: str) -> str:
    """RFC 3339 in UTC (…T04:30:00Z, milliseconds or microseconds when the value has them): a time with an offset
    converted to UTC, one without taken as UTC, a day as its midnight."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"column {column!r}: {value!r} is not a timestamp (RFC 3339, e.g. 2026-11-21T04:30:00Z)") \
            from None
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    fraction = "seconds" if not moment.microsecond else "milliseconds" if not moment.microsecond % 1000 else \
        "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=fraction) + "Z"


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "string": _string, "number": _typed(_number), "boolean": _typed(_boolean), "date": _typed(_date),
    "timestamp": _typed(_timestamp),
}
INBOUND_CONVERTERS = {**CONVERTERS, "string": partial(_string, limit=VALUE_LIMIT)}  # text as WalkMe takes it
FILE_CONVERTERS = {**CONVERTERS, "string": _text_as_is, "number": _typed(_exact_number)}  # values as they are


class Mapper:
    """Turns one source row into one destination record, or raises RowError. With ``limits`` (inbound) keys and
    text values are held to what WalkMe takes (A10); with ``as_is`` (outbound to a file) values are written as
    they are (:data:`FILE_CONVERTERS`; a key untrimmed, refused only when blank)."""

    def __init__(self, mapping: Mapping, key_name: str, *, limits: bool = False, as_is: bool = False) -> None:
        self.mapping = mapping
        self.key_name = key_name
        self.fields: list[FieldMapping] = list(mapping.fields)
        self.converters = INBOUND_CONVERTERS if limits else FILE_CONVERTERS if as_is else CONVERTERS
        self.trims = not as_is
        self.key_limit, self.value_limit = (KEY_LIMIT, VALUE_LIMIT) if limits else (None, None)
        # per field: whether its text is trimmed (inbound always; to a file when it says trim) and its converter
        self.field_trims = [self.trims or (f.trim and f.type == "string") for f in self.fields]
        self.field_converters = [_trimmed_text if as_is and trims else self.converters[f.type]
                                 for f, trims in zip(self.fields, self.field_trims, strict=True)]
        # (source column, destination, converter, whether an empty value clears): decided once, applied to every row
        self.plan = [(f.source, f.destination, convert, mapping.clears(f))
                     for f, convert in zip(self.fields, self.field_converters, strict=True)]
        self.key_source, self.key_copy = mapping.key.source, mapping.key.destination != key_name
        self.case_fold = mapping.key.case_fold
        self.active = mapping.active_field

    def required_columns(self) -> list[str]:
        columns = [self.mapping.key.source] + [f.source for f in self.fields]
        return columns + ([self.mapping.active_field] if self.mapping.active_field else [])

    def key_of(self, values: dict[str, Any]) -> str:
        source = self.key_source
        key = self.key_text(values[source] if source in values else lookup(values, source), source)
        if key is None:
            raise RowError(f"column {source!r} (the key) is empty")
        return key.casefold() if self.case_fold else key

    def key_text(self, value: Any, column: str) -> str | None:
        """The key column's value as text (None when empty), within the key limit (inbound)."""
        if self.trims:
            return _string(value, column, self.key_limit)
        text = _text_as_is(value, column)
        return text if text and not text.isspace() else None

    def map(self, values: dict[str, Any]) -> dict[str, Any]:
        key = self.key_of(values)
        record: dict[str, Any] = {self.key_name: key}
        if self.key_copy:
            record[self.mapping.key.destination] = key
        for source, destination, convert, clear in self.plan:
            value = convert(values[source] if source in values else lookup(values, source), source)
            if value is not None or clear:  # None: an empty value, kept (left out) or cleared (sent as null)
                record[destination] = value
        active = self.active
        if active:
            flag = CONVERTERS["boolean"](values[active] if active in values else lookup(values, active), active)
            if flag is None:
                raise RowError(f"column {active!r} (the active column) is empty; write true or false")
            record[active] = _as_text(flag)  # WalkMe has no Boolean type: the String "true" or "false"
        return record

    def columns(self) -> list[str]:
        """Output columns for file destinations, in mapping order."""
        names = [self.key_name] + [f.destination for f in self.fields]
        return list(dict.fromkeys(names))
