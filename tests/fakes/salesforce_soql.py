"""A SOQL subset for the fake Salesforce: SELECT fields | COUNT() FROM Object [WHERE …] [ORDER BY …] [LIMIT n]
[OFFSET n].

WHERE supports =, !=, <>, <, <=, >, >=, LIKE, IN (…), NOT IN (…), AND, OR, NOT and parentheses;
values are 'strings', numbers, true/false, null, date / datetime literals (datetimes compare as
instants, whatever their offset) and the relative date literals TODAY, YESTERDAY, TOMORROW,
LAST_N_DAYS:n and NEXT_N_DAYS:n (ranges of whole UTC days, the fake org's time zone). Field and object
names are case-insensitive, as in Salesforce. Errors carry Salesforce's errorCode and message
style (the query, a caret under the offending token, ``ERROR at Row:1:Column:n``, the reason).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<datetime>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})|(?P<number>-?\d+(?:\.\d+)?)|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)"
    r"|(?P<literal>(?i:TODAY|YESTERDAY|TOMORROW|(?:LAST|NEXT)_N_DAYS:\d+)(?![A-Za-z0-9_]))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<other>\S))"
)
KEYWORDS = {"select", "count", "from", "where", "and", "or", "not", "like", "in", "order", "by", "asc", "desc",
            "limit", "offset", "nulls", "first", "last", "true", "false", "null"}
CUSTOM_FIELD_HINT = (" If you are attempting to use a custom field, be sure to append the '__c' after the custom "
                     "field name. Please reference your WSDL or the describe call for the appropriate names.")
CUSTOM_OBJECT_HINT = (" If you are attempting to use a custom object, be sure to append the '__c' after the custom "
                      "object name. Please reference your WSDL or the describe call for the appropriate names.")


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int  # 1-based

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "name" else ""


@dataclass
class Query:
    object: str
    fields: list[str]
    where: Predicate | None = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # (field, descending, nulls_last)
    limit: int | None = None
    offset: int = 0
    count: bool = False  # SELECT COUNT(): the answer is totalSize, without records

    def run(self, records: list[Record]) -> list[dict[str, Any]]:
        rows = [r for r in records if self.where is None or self.where(r)]
        for name, descending, nulls_last in reversed(self.order):
            present = [r for r in rows if r.get(name) is not None]
            missing = [r for r in rows if r.get(name) is None]
            present.sort(key=lambda r, n=name: r[n], reverse=descending)
            rows = present + missing if nulls_last else missing + present
        rows = rows[self.offset:]
        if self.limit is not None:
            rows = rows[: self.limit]
        return [{name: r.get(name) for name in self.fields} for r in rows]


def parse(soql: str, schemas: Mapping[str, Mapping[str, str]]) -> Query:
    """``schemas``: object name (any case) -> {lower-case field name: canonical field name}."""
    return _Parser(soql, schemas).query()


def tokenize(soql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(soql):
        match = TOKEN.match(soql, position)
        if match is None or match.lastgroup is None:
            break
        kind = match.lastgroup
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, soql: str, schemas: Mapping[str, Mapping[str, str]]) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.position = 0
        self.schemas = {name.lower(): (name, fields) for name, fields in schemas.items()}
        self.fields: Mapping[str, str] = {}
        self.object = ""

    # ---- token helpers -----------------------------------------------------------------------

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.error("MALFORMED_QUERY", len(self.soql) + 1, "unexpected token: '<EOF>'")
        self.position += 1
        return token

    def accept(self, word: str) -> bool:
        token = self.peek()
        if token is not None and (token.word == word or (token.kind == "op" and token.text == word)):
            self.position += 1
            return True
        return False

    def expect(self, word: str) -> Token:
        token = self.take()
        if token.word != word and token.text != word:
            raise self.error("MALFORMED_QUERY", token.column, f"unexpected token: '{token.text}'")
        return token

    def error(self, code: str, column: int, reason: str) -> SoqlError:
        caret = " " * (column - 1) + "^"
        return SoqlError(code, f"\n{self.soql}\n{caret}\nERROR at Row:1:Column:{column}\n{reason}")

    # ---- grammar -----------------------------------------------------------------------------

    def query(self) -> Query:
        self.expect("select")
        selected: list[Token] = []
        count = self.accept("count")
        if count:
            self.expect("(")
            self.expect(")")
        while not count:
            token = self.take()
            if token.kind != "name" or token.word in KEYWORDS:
                raise self.error("MALFORMED_QUERY", token.column, f"unexpected token: '{token.text}'")
            selected.append(token)
            if not self.accept(","):
                break
        self.expect("from")
        object_token = self.take()
        entry = self.schemas.get(object_token.text.lower())
        if object_token.kind != "name" or entry is None:
            raise self.error("INVALID_TYPE", object_token.column,
                             f"sObject type '{object_token.text}' is not supported.{CUSTOM_OBJECT_HINT}")
        self.object, self.fields = entry
        query = Query(self.object, [self.field(token) for token in selected], count=count)
        if self.accept("where"):
            query.where = self.disjunction()
        if self.accept("order"):
            self.expect("by")
            while True:
                name = self.field(self.take())
                descending = self.accept("desc") or (self.accept("asc") and False)
                nulls_last = descending
                if self.accept("nulls"):
                    nulls_last = self.take().word == "last"
                query.order.append((name, descending, nulls_last))
                if not self.accept(","):
                    break
        if self.accept("limit"):
            query.limit = self.integer()
        if self.accept("offset"):
            query.offset = self.integer()
        extra = self.peek()
        if extra is not None:
            raise self.error("MALFORMED_QUERY", extra.column, f"unexpected token: '{extra.text}'")
        return query

    def field(self, token: Token) -> str:
        if token.kind != "name" or token.word in KEYWORDS:
            raise self.error("MALFORMED_QUERY", token.column, f"unexpected token: '{token.text}'")
        name = self.fields.get(token.text.lower())
        if name is None:
            raise self.error("INVALID_FIELD", token.column,
                             f"No such column '{token.text}' on entity '{self.object}'.{CUSTOM_FIELD_HINT}")
        return name

    def integer(self) -> int:
        token = self.take()
        if token.kind != "number" or not token.text.isdigit():
            raise self.error("MALFORMED_QUERY", token.column, f"unexpected token: '{token.text}'")
        return int(token.text)

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.accept("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.accept("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def negation(self) -> Predicate:
        if self.accept("not"):
            inner = self.negation()
            return lambda r: not inner(r)
        if self.accept("("):
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.field(self.take())
        negate = self.accept("not")
        operator = self.take()
        op = operator.word or operator.text
        if op == "in":
            self.expect("(")
            values = [self.value()]
            while self.accept(","):
                values.append(self.value())
            self.expect(")")
            return lambda r: (_normal(r.get(name)) in values) != negate
        if negate or op not in {"=", "!=", "<>", "<", "<=", ">", ">=", "like"}:
            raise self.error("MALFORMED_QUERY", operator.column, f"unexpected token: '{operator.text}'")
        value = self.value()
        if op == "like":
            pattern = re.compile("^" + re.escape(str(value)).replace("%", ".*").replace("_", ".") + "$",
                                 re.IGNORECASE | re.DOTALL)
            return lambda r: r.get(name) is not None and bool(pattern.match(str(r.get(name))))
        return lambda r: _compare(_normal(r.get(name)), op, value)

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "number":
            return float(token.text)
        if token.kind == "date":
            return token.text
        if token.kind == "datetime":
            return _instant(token.text)
        if token.kind == "literal":
            return _day_range(token.text.upper())
        if token.word in ("true", "false"):
            return token.word == "true"
        if token.word == "null":
            return None
        raise self.error("MALFORMED_QUERY", token.column, f"unexpected token: '{token.text}'")


@dataclass(frozen=True)
class DayRange:
    """A relative date literal: the instants from ``start`` (included) to ``end`` (excluded)."""

    start: datetime
    end: datetime


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _day_range(literal: str, today: date | None = None) -> DayRange:
    day = today or datetime.now(UTC).date()
    name, _, number = literal.partition(":")
    first, days = {"TODAY": (day, 1), "YESTERDAY": (day - timedelta(days=1), 1),
                   "TOMORROW": (day + timedelta(days=1), 1)}.get(name, (day, 1))
    if name == "LAST_N_DAYS":  # includes today: from n days ago up to the end of today
        first, days = day - timedelta(days=int(number)), int(number) + 1
    elif name == "NEXT_N_DAYS":  # from tomorrow on, n days
        first, days = day + timedelta(days=1), int(number)
    start = datetime.combine(first, time(), UTC)
    return DayRange(start, start + timedelta(days=days))


def _in_range(left: Any, op: str, right: DayRange) -> bool:
    if not isinstance(left, str):
        return False
    value = _instant(left) if "T" in left else datetime.combine(date.fromisoformat(left), time(), UTC)
    inside = right.start <= value < right.end
    return {"=": inside, "!=": not inside, "<>": not inside, "<": value < right.start, "<=": value < right.end,
            ">": value >= right.end, ">=": value >= right.start}[op]


def _normal(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(right, DayRange):
        return _in_range(left, op, right)
    if isinstance(right, datetime):
        left = _instant(left) if isinstance(left, str) else left
    if op == "=":
        if isinstance(left, str) and isinstance(right, str):
            return left.lower() == right.lower()
        return left == right
    if op in ("!=", "<>"):
        return not _compare(left, "=", right)
    if left is None or right is None or type(left) is not type(right):
        return False
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right
