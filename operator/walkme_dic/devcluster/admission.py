"""Admission of custom resources as the API server does it, from the CRD's ``openAPIV3Schema``.

In the API server's order: unknown fields are pruned (and reported, so ``fieldValidation=Strict``
can refuse them), ``default``s are filled in, the object is validated against the structural
schema (type, enum, required, pattern, length/size/range bounds, ``format: date-time``), and
every ``x-kubernetes-validations`` rule is evaluated with the CEL library ``cel-python`` —
``self`` is the value at the rule's node, and on updates ``oldSelf`` the previous value there
(transition rules, those that mention ``oldSelf``, run only when an old value exists, as in
Kubernetes). As in the API server, CEL rules are skipped while a type error stands.

A refusal is the API server's 422 ``Status``: reason ``Invalid``, message
``Integration.integrations.walkme.io "x" is invalid: spec.connectionRef: Invalid value: "object": …``,
and one ``details.causes`` entry per field, which kubectl prints as ``The Integration "x" is invalid``.

On updates, CEL rules are not re-run on values that did not change (ratcheting); the structural
schema is checked in full. Not emulated: CEL cost limits, the Kubernetes CEL extension libraries
(quantity, url, ip, the ``format`` library), ``messageExpression``, ratcheting of schema errors,
list-map correlation of ``oldSelf`` inside arrays, and ``format`` values other than date-time.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import celpy
from celpy import celtypes

KEEP_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata"})
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


@dataclass(frozen=True)
class FieldError:
    """One cause, worded like k8s.io/apimachinery's field.Error."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueTypeInvalid…
    path: str
    detail: str

    @property
    def message(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail


@dataclass
class Admitted:
    """The object as stored (pruned, defaulted) and the unknown fields that were dropped."""

    obj: dict[str, Any]
    pruned: list[str] = field(default_factory=list)


class AdmissionError(Exception):
    def __init__(self, kind: str, group: str, name: str, errors: list[FieldError]) -> None:
        self.kind, self.group, self.name, self.errors = kind, group, name, errors
        causes = [e.message for e in errors]
        joined = causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]"
        super().__init__(f'{kind}.{group} "{name}" is invalid: {joined}')

    def status(self) -> dict[str, Any]:
        """The body of the 422 answer."""
        return {
            "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": 422,
            "reason": "Invalid", "message": str(self),
            "details": {"name": self.name, "group": self.group, "kind": self.kind,
                        "causes": [{"reason": e.reason, "message": e.detail, "field": e.path} for e in self.errors]},
        }


def _describe(value: Any) -> str:
    """How field.Invalid prints a value: strings quoted, objects by type name."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    for name, types in JSON_TYPES.items():
        if isinstance(value, types) and not (name in ("integer", "number") and isinstance(value, bool)):
            return name
    return "null"


def _same(schema: dict[str, Any]) -> dict[str, Any]:
    return schema


def prune(
    value: Any, schema: dict[str, Any], path: str, dropped: list[str],
    resolve: Callable[[dict[str, Any]], dict[str, Any]] = _same,
) -> Any:
    """Drop fields the schema does not know (unless it preserves unknown fields); record their paths.

    ``resolve`` follows ``$ref``s (built-in kinds' schemas have them; CRD schemas do not).
    """
    schema = resolve(schema)
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return value
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        result = {}
        for key, item in value.items():
            sub = _child_schema(schema, key)
            known = sub is not None or (properties is None and extra is None) or (path == "" and key in KEEP_TOP_LEVEL)
            if not known:
                dropped.append(_join(path, key))
                continue
            result[key] = prune(item, sub, _join(path, key), dropped, resolve) if sub is not None else item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], _join(path, i), dropped, resolve) for i, item in enumerate(value)]
    return value


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill in ``default`` for absent properties, recursively (defaults of defaults included)."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    value[key] = apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def validate_schema(value: Any, schema: dict[str, Any], path: str) -> list[FieldError]:
    """Structural validation, with the API server's messages."""
    if value is None:
        if schema.get("nullable"):
            return []
        return [FieldError("FieldValueTypeInvalid", path,
                           f'Invalid value: "null": {path} in body must be of type {schema.get("type", "object")}: '
                           '"null"')]
    wanted = schema.get("type")
    have = _type_name(value)
    if wanted and not (have == wanted or (wanted == "number" and have == "integer")) and \
            not (schema.get("x-kubernetes-int-or-string") and have in ("integer", "string")):
        return [FieldError("FieldValueTypeInvalid", path,
                           f'Invalid value: "{have}": {path} in body must be of type {wanted}: "{have}"')]
    errors: list[FieldError] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_describe(v) for v in schema["enum"])
        errors.append(FieldError("FieldValueNotSupported", path,
                                 f"Unsupported value: {_describe(value)}: supported values: {supported}"))
    if isinstance(value, str):
        errors += _string_errors(value, schema, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        errors += _number_errors(value, schema, path)
    elif isinstance(value, list):
        errors += _size_errors(len(value), schema, path, "minItems", "maxItems", "items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                errors += validate_schema(item, schema["items"], _join(path, i))
    elif isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(FieldError("FieldValueRequired", _join(path, key), "Required value"))
        for key, item in value.items():
            sub = _child_schema(schema, key)
            if sub is not None:
                errors += validate_schema(item, sub, _join(path, key))
    return errors


def _string_errors(value: str, schema: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {_describe(value)}: {path} in body "
                                 f"should be at least {schema['minLength']} chars long"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError("FieldValueTooLong", path, f"Too long: may not be more than {schema['maxLength']} "
                                 "bytes"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {_describe(value)}: {path} in body "
                                 f"should match '{schema['pattern']}'"))
    if schema.get("format") == "date-time" and not _is_datetime(value):
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {_describe(value)}: {path} in body "
                                 "must be of type date-time"))
    return errors


def _number_errors(value: float, schema: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be "
                                 f"greater than or equal to {schema['minimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be "
                                 f"less than or equal to {schema['maximum']}"))
    return errors


def _size_errors(size: int, schema: dict[str, Any], path: str, low: str, high: str, what: str) -> list[FieldError]:
    errors = []
    if low in schema and size < schema[low]:
        errors.append(FieldError("FieldValueInvalid", path, f"Invalid value: {size}: {path} in body should have at "
                                 f"least {schema[low]} {what}"))
    if high in schema and size > schema[high]:
        errors.append(FieldError("FieldValueTooMany", path, f"Too many: {size}: must have at most {schema[high]} "
                                 f"{what}"))
    return errors


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@functools.cache
def compile_rule(rule: str) -> celpy.Runner:
    """A CEL program for one rule; raises celpy.CELParseError for a rule the API server would refuse."""
    env = celpy.Environment()
    return env.program(env.compile(rule))


def is_transition_rule(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def rules_in(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every x-kubernetes-validations rule of a schema, with the path of the node that carries it."""
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations", ())]
    for key, sub in (schema.get("properties") or {}).items():
        found += rules_in(sub, _join(path, key))
    if isinstance(schema.get("items"), dict):
        found += rules_in(schema["items"], path + "[*]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += rules_in(schema["additionalProperties"], path + "[*]")
    return found


_MISSING = object()


def _child_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The schema of member ``key`` of an object: its property's, else additionalProperties' (when a schema)."""
    sub = (schema.get("properties") or {}).get(key)
    extra = schema.get("additionalProperties")
    return sub if sub is not None else extra if isinstance(extra, dict) else None


def evaluate_rules(value: Any, old: Any, schema: dict[str, Any], path: str) -> list[FieldError]:
    """Run the x-kubernetes-validations rules at this node and below; ``old`` is _MISSING on create.

    An unchanged value is not re-checked (the API server's validation ratcheting, on since 1.30), so
    a status write does not re-run the spec's rules.
    """
    if old is not _MISSING and value == old:
        return []
    errors: list[FieldError] = []
    for rule in schema.get("x-kubernetes-validations", ()):
        transition = is_transition_rule(rule["rule"])
        if transition and old is _MISSING:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            result = compile_rule(rule["rule"]).evaluate(activation)
        except celpy.CELEvalError as error:
            result = error
        where = _join(path, rule["fieldPath"].lstrip(".")) if rule.get("fieldPath") else path
        if isinstance(result, Exception):
            errors.append(FieldError("FieldValueInvalid", where, f'Invalid value: "{schema.get("type", "object")}": '
                                     f"{result.args[0] if result.args else result} evaluating rule: {rule['rule']}"))
        elif not (isinstance(result, celtypes.BoolType) and bool(result)):
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            reason = rule.get("reason", "FieldValueInvalid")
            errors.append(FieldError(reason, where, f'Invalid value: "{schema.get("type", "object")}": {message}'))
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _child_schema(schema, key)
            if sub is not None:
                previous = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
                errors += evaluate_rules(item, previous, sub, _join(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += evaluate_rules(item, _MISSING, schema["items"], _join(path, i))
    return errors


def check_rules_compile(schema: dict[str, Any]) -> None:
    """What the API server does when a CRD is created: every rule must compile."""
    for path, rule in rules_in(schema):
        try:
            compile_rule(rule["rule"])
        except celpy.CELParseError as error:
            raise ValueError(f"{path or '<root>'}: x-kubernetes-validations rule {rule['rule']!r} "
                             f"does not compile: {error}") from error


def admit(
    kind: str, group: str, schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None, *,
    rules: bool = True,
) -> Admitted:
    """Prune, default and validate ``obj`` (``old`` is the stored object on updates; ``rules``: run CEL)."""
    dropped: list[str] = []
    pruned = prune(obj, schema, "", dropped)
    defaulted = apply_defaults(pruned, schema)
    body = {k: v for k, v in defaulted.items() if k not in KEEP_TOP_LEVEL}
    body_schema = {**schema, "required": [r for r in schema.get("required", ()) if r not in KEEP_TOP_LEVEL]}
    errors = validate_schema(body, body_schema, "")
    if rules and not any(e.reason == "FieldValueTypeInvalid" for e in errors):
        previous = {k: v for k, v in old.items() if k not in KEEP_TOP_LEVEL} if old is not None else _MISSING
        errors += evaluate_rules(body, previous, schema, "")
    if errors:
        raise AdmissionError(kind, group, (obj.get("metadata") or {}).get("name", ""), errors)
    return Admitted(defaulted, dropped)
