"""The fake Salesforce's in-memory records: one schema per sObject, Ids, and per-record validation.

Values arrive either as JSON (sObject Collections) or as CSV text (Bulk API 2.0); both are coerced
to the field's type, and bad values give the per-record errors Salesforce gives
(INVALID_TYPE_ON_FIELD_IN_RECORD, REQUIRED_FIELD_MISSING, INVALID_EMAIL_ADDRESS, STRING_TOO_LONG, …).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

FieldType = str  # string | email | double | int | boolean | date | datetime | id
SYSTEM_FIELDS = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
CSV_NULL = "#N/A"


@dataclass(frozen=True)
class RecordError:
    status_code: str
    message: str
    fields: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "message": self.message, "fields": list(self.fields)}

    def csv(self) -> str:
        """Bulk API 2.0's sf__Error text: ``CODE:message:Field1,Field2 --``."""
        return f"{self.status_code}:{self.message}:{','.join(self.fields)} --"


@dataclass
class FieldDef:
    name: str
    type: FieldType = "string"
    required: bool = False
    length: int = 255


@dataclass
class SObject:
    name: str
    key_prefix: str
    fields: dict[str, FieldDef]  # lower-case name -> definition
    external_id: str | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # Id -> record
    by_external_id: dict[str, str] = field(default_factory=dict)  # external id value (SObject.key) -> Id
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # the recycle bin: Id -> record
    case_sensitive: bool = False  # the external id field is Unique and "case sensitive" (default: insensitive)
    shared: set[str] = field(default_factory=set)  # external id values (SObject.key) more than one record held

    def key(self, value: Any) -> str:
        """An external id value as the field compares it."""
        return str(value) if self.case_sensitive else str(value).lower()

    def canonical(self, name: str) -> str | None:
        definition = self.fields.get(name.lower())
        return definition.name if definition else None

    def field_names(self) -> dict[str, str]:
        return {key: definition.name for key, definition in self.fields.items()}

    def find(self, record_id: str) -> dict[str, Any] | None:
        """A live record by its 15- or 18-character Id."""
        if len(record_id) not in (15, 18):
            return None
        return next((r for k, r in self.records.items() if k[:15] == record_id[:15]), None)

    def describe(self) -> dict[str, Any]:
        """The describe answer, with the fields Salesforce always lists and the ones a client reads most."""
        types = {"string": "string", "email": "email", "double": "double", "int": "int", "boolean": "boolean",
                 "date": "date", "datetime": "datetime", "id": "id"}
        fields = [{"name": d.name, "type": types.get(d.type, d.type), "length": d.length if d.type == "string" else 0,
                   "nillable": not d.required and d.name != "Id", "externalId": d.name == self.external_id,
                   "caseSensitive": d.name == self.external_id and self.case_sensitive,
                   "createable": d.name not in SYSTEM_FIELDS, "updateable": d.name not in SYSTEM_FIELDS,
                   "custom": d.name.endswith("__c"), "label": d.name.removesuffix("__c").replace("_", " ")}
                  for d in self.fields.values()]
        return {"name": self.name, "label": self.name, "keyPrefix": self.key_prefix,
                "custom": self.name.endswith("__c"),
                "createable": True, "updateable": True, "deletable": True, "queryable": True, "fields": fields,
                "urls": {"sobject": f"/services/data/v62.0/sobjects/{self.name}"}}

    def matching(self, value: Any) -> list[dict[str, Any]]:
        """Every live record whose external id is ``value`` (case-insensitive): an External ID field not marked
        Unique may hold a value more than once (seed such records to see it)."""
        wanted = self.key(value)
        if wanted not in self.shared:  # the common case, without a scan
            found = self.find_by_external_id(value)
            return [found] if found else []
        return [r for r in self.records.values() if self.external_id and r.get(self.external_id) is not None
                and self.key(r[self.external_id]) == wanted]

    def find_by_external_id(self, value: Any) -> dict[str, Any] | None:
        record_id = self.by_external_id.get(self.key(value))
        return self.records.get(record_id) if record_id else None

    def index(self, record: dict[str, Any]) -> None:
        if self.external_id and record.get(self.external_id) is not None:
            key = self.key(record[self.external_id])
            if self.by_external_id.get(key, record["Id"]) != record["Id"] and key not in self.shared:
                self.shared.add(key)
            self.by_external_id[key] = record["Id"]

    def reindex(self) -> None:
        self.by_external_id = {}
        for record in self.records.values():
            self.index(record)


class Store:
    """All sObjects of one fake org. Not thread-safe on its own; the server serializes access."""

    def __init__(self) -> None:
        self.objects: dict[str, SObject] = {}  # lower-case name -> object
        self._counter = itertools.count(1)
        self._prefixes = itertools.count(0)
        self.clock_offset = timedelta(0)  # the org's clock ahead of this machine's (FakeSalesforce.advance)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def stamp(self) -> str:
        """The org's time as Salesforce writes a dateTime: whole seconds, ``.000+0000``."""
        return self.now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def define(self, name: str, fields: Mapping[str, FieldType | FieldDef], *, external_id: str | None = None,
               required: Iterable[str] = (), key_prefix: str | None = None) -> SObject:
        required_names = {r.lower() for r in required}
        definitions: dict[str, FieldDef] = {
            "id": FieldDef("Id", "id"), "createddate": FieldDef("CreatedDate", "datetime"),
            "lastmodifieddate": FieldDef("LastModifiedDate", "datetime"),
            "systemmodstamp": FieldDef("SystemModstamp", "datetime"), "isdeleted": FieldDef("IsDeleted", "boolean"),
        }
        for field_name, spec in fields.items():
            definition = spec if isinstance(spec, FieldDef) else FieldDef(field_name, spec)
            definition.required = definition.required or field_name.lower() in required_names
            definitions[field_name.lower()] = definition
        prefix = key_prefix or f"a{next(self._prefixes):02d}"
        sobject = SObject(name, prefix, definitions, external_id)
        self.objects[name.lower()] = sobject
        return sobject

    def get(self, name: str) -> SObject | None:
        return self.objects.get(name.lower())

    def schemas(self) -> dict[str, dict[str, str]]:
        return {o.name: o.field_names() for o in self.objects.values()}

    def new_id(self, prefix: str) -> str:
        number = next(self._counter)
        body = ""
        for _ in range(12):
            number, digit = divmod(number, 62)
            body = BASE62[digit] + body
        return with_checksum(prefix + body)

    # ---- coercion ----------------------------------------------------------------------------

    @staticmethod
    def coerce(definition: FieldDef, value: Any, *, from_csv: bool) -> tuple[Any, RecordError | None]:
        """(typed value, None) or (None, error). CSV '#N/A' and JSON null mean 'set to null'."""
        if value is None or (from_csv and value == CSV_NULL):
            return None, None
        name, kind = definition.name, definition.type
        wrong = RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value}",
                            (name,))
        if kind in ("string", "email", "id"):
            if not isinstance(value, str) and not from_csv:
                if isinstance(value, bool | dict | list):
                    return None, wrong
                value = str(value)
            if kind == "email" and not EMAIL.match(value):
                return None, RecordError("INVALID_EMAIL_ADDRESS", f"{name}: invalid email address: {value}", (name,))
            if len(value) > definition.length:
                return None, RecordError("STRING_TOO_LONG",
                                         f"{name}: data value too large: {value[:40]} (max length="
                                         f"{definition.length})", (name,))
            return value, None
        if kind in ("double", "int"):
            if isinstance(value, bool):
                return None, wrong
            try:
                number = float(value)
            except (TypeError, ValueError):
                return None, wrong
            if kind == "int":
                return (int(number), None) if number.is_integer() else (None, wrong)
            return number, None
        if kind == "boolean":
            if isinstance(value, bool):
                return value, None
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1"), None
            return None, wrong
        if kind == "date":
            return (value, None) if isinstance(value, str) and DATE.match(value) else (None, wrong)
        if kind == "datetime":
            return (value, None) if isinstance(value, str) and DATETIME.match(value) else (None, wrong)
        return value, None

    def clean(self, sobject: SObject, values: Mapping[str, Any], *, from_csv: bool,
              creating: bool) -> tuple[dict[str, Any], list[RecordError]]:
        """Typed values keyed by canonical names, or the record's errors. Unknown names must be checked first."""
        cleaned: dict[str, Any] = {}
        errors: list[RecordError] = []
        for key, raw in values.items():
            definition = sobject.fields[key.lower()]
            if definition.name in SYSTEM_FIELDS or (from_csv and raw == ""):
                continue  # read-only, or "leave unchanged" in a CSV cell
            value, error = self.coerce(definition, raw, from_csv=from_csv)
            if error is not None:
                errors.append(error)
            else:
                cleaned[definition.name] = value
        missing = [d.name for d in sobject.fields.values() if d.required and (
            (creating and cleaned.get(d.name) is None) or (d.name in cleaned and cleaned[d.name] is None))]
        if missing and not errors:
            errors.append(RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                                      tuple(missing)))
        return cleaned, errors

    # ---- writes ------------------------------------------------------------------------------

    def insert(self, sobject: SObject, cleaned: dict[str, Any]) -> str:
        record_id = self.new_id(sobject.key_prefix)
        now = self.stamp()
        sobject.records[record_id] = {"Id": record_id, "CreatedDate": now, "LastModifiedDate": now,
                                      "SystemModstamp": now, "IsDeleted": False, **cleaned}
        sobject.index(sobject.records[record_id])
        return record_id

    def update(self, sobject: SObject, record_id: str, cleaned: dict[str, Any], *, stamp: str | None = None) -> None:
        """``stamp``: when the change was made, if not now (a transaction committing late)."""
        now = stamp or self.stamp()
        record = sobject.records[record_id]
        if sobject.external_id and record.get(sobject.external_id) is not None:
            sobject.by_external_id.pop(sobject.key(record[sobject.external_id]), None)
        record.update({**cleaned, "LastModifiedDate": now, "SystemModstamp": now})
        sobject.index(record)

    def delete(self, sobject: SObject, record_id: str, *, hard: bool) -> None:
        """Into the recycle bin (queryAll still sees it, with IsDeleted true), or gone for good."""
        record = sobject.records.pop(record_id)
        if sobject.external_id and record.get(sobject.external_id) is not None:
            sobject.by_external_id.pop(sobject.key(record[sobject.external_id]), None)
        if not hard:
            now = self.stamp()
            sobject.deleted[record_id] = {**record, "IsDeleted": True, "LastModifiedDate": now, "SystemModstamp": now}

    def seed(self, name: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        sobject = self.objects[name.lower()]
        ids = []
        for row in rows:
            cleaned = {sobject.fields[k.lower()].name: v for k, v in row.items()}
            ids.append(self.insert(sobject, cleaned))
        return ids


def with_checksum(id15: str) -> str:
    """Salesforce's 18-character Id: three checksum characters encode the case of the 15."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += CHECKSUM[bits]
    return id15 + suffix
