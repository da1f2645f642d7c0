"""Mapping source rows to destination records with typed coercion (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from walkme_dic.api.integration import FieldMapping, FieldType, Mapping

EXACT_LIMIT = 2**53  # a double holds every integer below it, and no number above it exactly
TRUE = {"true", "1", "yes", "y", "t"}
FALSE = {"false", "0", "no", "n", "f"}


class RowError(ValueError):
    """Why one row cannot be mapped; the message names the column."""


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


def _string(value: Any, column: str) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, dict | list):
        kind = "object" if isinstance(value, dict) else "array"
        raise RowError(f"column {column!r}: a JSON {kind} is not text; map one of its fields (column.field) "
                       "or write it as a string in the file")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"column {column!r}: {value!r} is not a value (JSON has no NaN or Infinity)")
    return _as_text(value)


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
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return text if text[4] == "-" and text[7] == "-" else day.isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise RowError(f"column {column!r}: {value!r} is not a date (YYYY-MM-DD)") from None


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "string": _string, "number": _typed(_number), "boolean": _typed(_boolean), "date": _typed(_date),
}


class Mapper:
    """Turns one source row into one destination record, or raises RowError."""

    def __init__(self, mapping: Mapping, key_name: str) -> None:
        self.mapping = mapping
        self.key_name = key_name
        self.fields: list[FieldMapping] = list(mapping.fields)
        # (source column, destination, converter, whether an empty value clears): decided once, applied to every row
        self.plan = [(f.source, f.destination, CONVERTERS[f.type], mapping.clears(f)) for f in self.fields]
        self.key_source, self.key_copy = mapping.key.source, mapping.key.destination != key_name
        self.case_fold = mapping.key.case_fold
        self.active = mapping.active_field

    def required_columns(self) -> list[str]:
        columns = [self.mapping.key.source] + [f.source for f in self.fields]
        return columns + ([self.mapping.active_field] if self.mapping.active_field else [])

    def key_of(self, values: dict[str, Any]) -> str:
        source = self.key_source
        key = _string(values[source] if source in values else lookup(values, source), source)
        if key is None:
            raise RowError(f"column {source!r} (the key) is empty")
        return key.casefold() if self.case_fold else key

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
            record[active] = flag
        return record

    def columns(self) -> list[str]:
        """Output columns for file destinations, in mapping order."""
        names = [self.key_name] + [f.destination for f in self.fields]
        return list(dict.fromkeys(names))
