"""Mapping source rows to destination records with typed coercion (pure functions)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from walkme_dic.api.integration import FieldMapping, FieldType, Mapping

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
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else value
    if kind == "string":
        return text if isinstance(text, str) else _as_text(text)
    if kind == "number":
        return _number(text, column)
    if kind == "boolean":
        return _boolean(text, column)
    return _date(text, column)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, column: str) -> int | float:
    if isinstance(value, bool):
        raise RowError(f"column {column!r}: {value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise RowError(f"column {column!r}: {value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise RowError(f"column {column!r}: {value!r} is not a finite number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


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
            return date.fromisoformat(text).isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise RowError(f"column {column!r}: {value!r} is not a date (YYYY-MM-DD)") from None


class Mapper:
    """Turns one source row into one destination record, or raises RowError."""

    def __init__(self, mapping: Mapping, key_name: str) -> None:
        self.mapping = mapping
        self.key_name = key_name
        self.fields: list[FieldMapping] = list(mapping.fields)

    def required_columns(self) -> list[str]:
        columns = [self.mapping.key.source] + [f.source for f in self.fields]
        return columns + ([self.mapping.active_field] if self.mapping.active_field else [])

    def key_of(self, values: dict[str, Any]) -> str:
        key = coerce(lookup(values, self.mapping.key.source), "string", self.mapping.key.source)
        if key is None:
            raise RowError(f"column {self.mapping.key.source!r} (the key) is empty")
        return str(key)

    def map(self, values: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {self.key_name: self.key_of(values)}
        if self.mapping.key.destination != self.key_name:
            record[self.mapping.key.destination] = record[self.key_name]
        for field in self.fields:
            value = coerce(lookup(values, field.source), field.type, field.source)
            if value is not None:
                record[field.destination] = value
        active = self.mapping.active_field
        if active:
            flag = coerce(lookup(values, active), "boolean", active)
            if flag is None:
                raise RowError(f"column {active!r} (the active column) is empty; write true or false")
            record[active] = flag
        return record

    def columns(self) -> list[str]:
        """Output columns for file destinations, in mapping order."""
        names = [self.key_name] + [f.destination for f in self.fields]
        return list(dict.fromkeys(names))
