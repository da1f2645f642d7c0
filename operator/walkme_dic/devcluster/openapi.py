"""OpenAPI v2 (``/openapi/v2``) and v3 (``/openapi/v3``) documents for what the dev cluster serves.

kubectl reads them for ``explain``, for client-side apply's merge strategy and to decide how to
validate: when the v3 document of a group-version lists a ``fieldValidation`` query parameter on
the PATCH operation of a kind, kubectl sends ``fieldValidation=Strict`` and leaves validation to
the server (:mod:`walkme_dic.devcluster.admission`), as against a real API server.

Schemas come from two places:
* custom resources: the CRD's ``openAPIV3Schema`` with ``metadata`` pointing at ObjectMeta and the
  ``x-kubernetes-group-version-kind`` extension, as the API server publishes them;
* built-in kinds: the upstream Kubernetes definitions shipped (as JSON Schema) by the PyPI
  package ``kubernetes-validate``, turned back into OpenAPI (``["string", "null"]`` → ``string``,
  int-or-string ``oneOf`` → ``format: int-or-string``) and cut down to what the served kinds
  reference.

Not published: the protobuf form of v2 (a request that only accepts protobuf gets 406, as from a
server without it), operations other than the CRUD verbs, and ``x-kubernetes-*`` list/map merge
keys beyond what the upstream definitions carry.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from walkme_dic.devcluster.emulator import ResourceType

V2_PREFIX = "#/definitions/"
V3_PREFIX = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
UPSTREAM_VERSION = "v1.33.0-local"  # the kubectl the tests run is v1.33
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")
API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an object. Servers should "
                   "convert recognized schemas to the latest internal value, and may reject unrecognized values.")
KIND_DOC = ("Kind is a string value representing the REST resource this object represents. Servers may infer "
            "this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.")


@functools.cache
def upstream_definitions() -> dict[str, dict[str, Any]]:
    """Kubernetes' own definitions (JSON Schema form, from kubernetes-validate), keyed by their OpenAPI name."""
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / UPSTREAM_VERSION / "_definitions.json"
    return json.loads(root.read_text())["$defs"]


def _openapi(node: Any, prefix: str, *, v3: bool) -> Any:
    """One upstream JSON Schema node as OpenAPI: single types, local $refs, int-or-string formats."""
    if isinstance(node, list):
        return [_openapi(item, prefix, v3=v3) for item in node]
    if not isinstance(node, dict):
        return node
    if "oneOf" in node and all("type" in option for option in node["oneOf"]):
        kinds = {_single_type(option["type"]) for option in node["oneOf"]}
        fmt = "int-or-string" if kinds == {"string", "integer"} else "quantity" if "number" in kinds else None
        return {"type": "string", **({"format": fmt} if fmt else {}),
                **{k: v for k, v in node.items() if k != "oneOf"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out["$ref"] = prefix + value.rsplit("/", 1)[1]
        elif key == "type":
            out["type"] = _single_type(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _openapi(schema, prefix, v3=v3) for name, schema in value.items()}
        else:
            out[key] = _openapi(value, prefix, v3=v3)
    if v3 and "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _single_type(value: str | list[str]) -> str:
    if isinstance(value, str):
        return value
    return next((t for t in value if t != "null"), "object")


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].rsplit("/", 1)[1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@functools.cache
def upstream_name(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, found by its x-kubernetes-group-version-kind."""
    for name, schema in upstream_definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                return name
    return None


@functools.cache
def _converted_definitions() -> dict[str, dict[str, Any]]:
    return {name: _openapi(schema, V2_PREFIX, v3=False) for name, schema in upstream_definitions().items()}


def builtin_schema(group: str, version: str, kind: str) -> dict[str, Any] | None:
    """The OpenAPI schema of a built-in kind (its ``$ref``s resolve with :func:`resolve_ref`)."""
    name = upstream_name(group, version, kind)
    return _converted_definitions()[name] if name else None


def resolve_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its ``$ref`` (to an upstream definition) followed."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _converted_definitions().get(ref.removeprefix(V2_PREFIX), {})
    return schema


def crd_definition_name(rtype: ResourceType) -> str:
    """How the API server names a custom resource's schema: the group reversed, then version and kind."""
    return ".".join([*reversed(rtype.group.split(".")), rtype.version, rtype.kind])


def crd_object_schema(rtype: ResourceType, schema: dict[str, Any], prefix: str, *, v3: bool) -> dict[str, Any]:
    published = copy.deepcopy(schema)
    properties = published.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
    properties["kind"] = {"type": "string", "description": KIND_DOC}
    meta_ref = {"$ref": prefix + OBJECT_META}
    properties["metadata"] = {"allOf": [meta_ref]} if v3 else meta_ref
    published["type"] = "object"
    published["x-kubernetes-group-version-kind"] = [{"group": rtype.group, "kind": rtype.kind,
                                                     "version": rtype.version}]
    return published


class OpenAPIDocuments:
    """Builds the documents from the served types and CRD schemas (the server builds one per request)."""

    def __init__(self, types: Iterable[ResourceType], crd_schemas: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.types = sorted(types, key=lambda t: (t.group, t.version, t.plural))
        self.crd_schemas = crd_schemas

    def _definitions(
        self, types: list[ResourceType], prefix: str, *, v3: bool,
    ) -> tuple[dict[tuple[str, str, str], str], dict[str, Any]]:
        """(definition name per type, definitions closure) for these types."""
        upstream = upstream_definitions()
        names: dict[tuple[str, str, str], str] = {}
        wanted = [STATUS]
        defined: dict[str, Any] = {}
        for rtype in types:
            key = (rtype.group, rtype.version, rtype.plural)
            if key in self.crd_schemas:
                name = crd_definition_name(rtype)
                defined[name] = crd_object_schema(rtype, self.crd_schemas[key], prefix, v3=v3)
                defined[name + "List"] = _list_schema(rtype, name, prefix)
                wanted += [OBJECT_META, LIST_META]
            else:
                found = upstream_name(rtype.group, rtype.version, rtype.kind)
                if found is None:
                    continue
                name = found
                wanted += [found, found + "List"]
            names[key] = name
        while wanted:
            name = wanted.pop()
            if name in defined or name not in upstream:
                continue
            defined[name] = _openapi(upstream[name], prefix, v3=v3)
            wanted += list(_refs(upstream[name]))
        return names, defined

    def _custom(self, rtype: ResourceType) -> bool:
        return (rtype.group, rtype.version, rtype.plural) in self.crd_schemas

    def v2(self) -> dict[str, Any]:
        names, definitions = self._definitions(self.types, V2_PREFIX, v3=False)
        paths: dict[str, Any] = {}
        for rtype in self.types:
            name = names.get((rtype.group, rtype.version, rtype.plural))
            if name is not None:
                paths.update(_paths(rtype, V2_PREFIX + name, v3=False, custom=self._custom(rtype)))
        return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths, "definitions": definitions}

    def group_versions(self) -> list[str]:
        """``api/v1``, ``apis/<group>/<version>``… as listed in the v3 root."""
        return sorted({_gv_path(t) for t in self.types})

    def v3(self, gv_path: str) -> dict[str, Any] | None:
        types = [t for t in self.types if _gv_path(t) == gv_path]
        if not types:
            return None
        names, schemas = self._definitions(types, V3_PREFIX, v3=True)
        paths: dict[str, Any] = {}
        for rtype in types:
            name = names.get((rtype.group, rtype.version, rtype.plural))
            if name is not None:
                paths.update(_paths(rtype, V3_PREFIX + name, v3=True, custom=self._custom(rtype)))
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths, "components": {"schemas": schemas}}

    def v3_root(self) -> dict[str, Any]:
        return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self._hash(gv)}"}
                          for gv in self.group_versions()}}

    def _hash(self, gv_path: str) -> str:
        return hashlib.sha512(json.dumps(self.v3(gv_path), sort_keys=True).encode()).hexdigest().upper()


def _gv_path(rtype: ResourceType) -> str:
    return f"apis/{rtype.group}/{rtype.version}" if rtype.group else f"api/{rtype.version}"


def _list_schema(rtype: ResourceType, item: str, prefix: str) -> dict[str, Any]:
    return {
        "type": "object", "required": ["items"],
        "description": f"{rtype.kind}List is a list of {rtype.kind}",
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": {"$ref": prefix + LIST_META},
            "items": {"type": "array", "items": {"$ref": prefix + item}},
        },
        "x-kubernetes-group-version-kind": [{"group": rtype.group, "kind": f"{rtype.kind}List",
                                             "version": rtype.version}],
    }


def _paths(rtype: ResourceType, ref: str, *, v3: bool, custom: bool) -> dict[str, Any]:
    """CRUD operations on the collection and on one object, each tagged with its kind."""
    base = f"/{_gv_path(rtype)}" + ("/namespaces/{namespace}" if rtype.namespaced else "") + f"/{rtype.plural}"
    gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    list_ref = ref + "List"
    path_params = [_param("namespace", "path", v3)] if rtype.namespaced else []

    def operation(action: str, verb: str, response: str, query: tuple[str, ...] = (),
                  body: tuple[str, ...] = ()) -> dict[str, Any]:
        op: dict[str, Any] = {
            "operationId": f"{verb}{rtype.kind}", "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_param(q, "query", v3) for q in query],
        }
        if v3:
            op["responses"] = {"200": {"content": {"application/json": {"schema": {"$ref": response}}}}}
            if body:
                op["requestBody"] = {"required": True,
                                     "content": {t: {"schema": {"$ref": ref}} for t in body}}
        else:
            op["responses"] = {"200": {"schema": {"$ref": response}}}
            op["produces"] = ["application/json", "application/yaml"]
            if body:
                op["consumes"] = list(body)
                op["parameters"].append({"name": "body", "in": "body", "required": True, "schema": {"$ref": ref}})
        return op

    writes = ("dryRun", "fieldManager", "fieldValidation")
    patch_types = tuple(t for t in PATCH_TYPES if not (custom and "strategic" in t))  # CRDs: no strategic merge
    return {
        base: {
            "parameters": path_params,
            "get": operation("list", "list", list_ref, ("labelSelector", "fieldSelector", "watch")),
            "post": operation("post", "create", ref, writes, ("application/json", "application/yaml")),
        },
        base + "/{name}": {
            "parameters": [*path_params, _param("name", "path", v3)],
            "get": operation("get", "read", ref),
            "put": operation("put", "replace", ref, writes, ("application/json", "application/yaml")),
            "patch": operation("patch", "patch", ref, (*writes, "force"), patch_types),
            "delete": operation("delete", "delete", (V3_PREFIX if v3 else V2_PREFIX) + STATUS),
        },
    }


def _param(name: str, where: str, v3: bool) -> dict[str, Any]:
    kind = "boolean" if name in ("watch", "force") else "string"
    param: dict[str, Any] = {"name": name, "in": where, "uniqueItems": True}
    if where == "path":
        param["required"] = True
    if v3:
        param["schema"] = {"type": kind, "uniqueItems": True}
    else:
        param["type"] = kind
    return param
