"""An in-memory Kubernetes API server for tests and the demo, built on kmock's KubernetesScaffold.

kmock 0.8 gives the HTTP server, path parsing, discovery documents and Kubernetes-style error
bodies (requests on the resources served here bypass its body parsing). Its ``KubernetesEmulator``
stores objects as plain merged dicts, so this class keeps its own store and implements what kopf and our
controllers rely on:

* metadata.uid, a global resourceVersion bumped on every write, creationTimestamp, generateName;
* metadata.generation: 1 on create, bumped only when something outside metadata/status changes;
* the status subresource: writes to ``/status`` change only status, writes to the object ignore it;
* JSON merge patch (null deletes; strategic merge is treated as merge), JSON patch (RFC 6902,
  :mod:`.jsonpatch`), PUT as replace;
* label selectors (=, ==, !=, in, notin, exists, !exists) and metadata.name/namespace field selectors;
* list responses with ``kind: <Kind>List`` and a resourceVersion; watch streams resuming after a
  resourceVersion (410 Gone when it is too old), with timeoutSeconds;
* finalizers and deletionTimestamp; garbage collection of dependents through ownerReferences;
* ``Accept: application/json;as=Table`` rendered from a CRD's additionalPrinterColumns (and a few
  columns for built-in kinds), so that ``kubectl get`` prints the same columns as a real cluster;
* Secrets' stringData folded into base64 data, and ``type: Opaque`` by default, as the real API does;
* what kubectl needs beyond that: discovery of the core group as ``v1``, JSON answers with protobuf
  request bodies decoded or refused (:mod:`.negotiation`), ``/openapi/v2`` and ``/openapi/v3``
  (:mod:`.openapi`), admission of custom resources — pruning, defaults, schema, CEL rules — and
  unknown fields of built-in kinds dropped (by their upstream schema), refused under
  ``fieldValidation=Strict`` and reported as ``Warning`` headers under ``Warn`` (:mod:`.admission`),
  server-side apply
  (``application/apply-patch+yaml``: create or merge, no field ownership), ``dryRun=All`` (admitted,
  answered, not stored: ``kubectl diff``, ``--dry-run=server``), Job ``spec.selector`` and
  pod-template labels as the Job registry sets them, ``pods/log`` proxied to the node's kubelet, and
  namespace deletion removing what is in the namespace;
* for tests, :meth:`DevKubernetes.fail_next` makes chosen requests fail (a 500 on a status write).

Field selectors match any dotted field path by string equality (kubectl describe uses
involvedObject.*). Not emulated: RBAC and authentication, managedFields and apply conflicts,
resource quotas, watch bookmarks, pagination (``limit``/``continue`` return everything at once),
validation of built-in kinds beyond unknown fields, and any controller except garbage collection,
the namespace cleanup and the Job defaults (Jobs are run by :mod:`walkme_dic.devcluster.kubelet`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import copy
import json
import re
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import parsing, rendering

from walkme_dic.devcluster import negotiation
from walkme_dic.devcluster.admission import AdmissionError, admit, check_rules_compile, prune
from walkme_dic.devcluster.jsonpatch import JSONPatchError, apply_json_patch
from walkme_dic.devcluster.openapi import OpenAPIDocuments, builtin_schema, resolve_ref
from walkme_dic.devcluster.printing import render_table
from walkme_dic.devcluster.protobuf import UnsupportedKind

Key = tuple[str, str, str, str | None, str]  # group, version, plural, namespace, name
HISTORY = 50_000
SYSTEM_NAMESPACES = ("default", "kube-system")
DRY_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar("dry_run", default=False)
WARNINGS: contextvars.ContextVar[list[str]] = contextvars.ContextVar("warnings")
NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[dict[str, Any], ...] = ()
    subresources: tuple[str, ...] = ()  # besides status, e.g. pods/log


    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _column(name: str, path: str, priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": "string", "jsonPath": path, "priority": priority}


BUILTIN_TYPES = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True, short_names=("ns",),
                 printer_columns=(_column("Status", ".status.phase"),)),
    ResourceType("", "v1", "secrets", "Secret", printer_columns=(_column("Type", ".type"),)),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",), printer_columns=(
        _column("Type", ".type"), _column("Reason", ".reason"), _column("Object", ".involvedObject.name"),
        _column("Message", ".message"))),
    ResourceType("", "v1", "pods", "Pod", status_subresource=True, short_names=("po",), subresources=("log",),
                 categories=("all",),
                 printer_columns=(_column("Status", ".status.phase"), _column("Node", ".spec.nodeName", 1))),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, status_subresource=True, short_names=("no",),
                 printer_columns=(_column("Status", '.status.conditions[?(@.type=="Ready")].type'),)),
    ResourceType("batch", "v1", "jobs", "Job", status_subresource=True, categories=("all",), printer_columns=(
        _column("Complete", '.status.conditions[?(@.type=="Complete")].status'),
        _column("Succeeded", ".status.succeeded"))),
    ResourceType("events.k8s.io", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 namespaced=False, status_subresource=True, short_names=("crd", "crds")),
)


@dataclass(frozen=True)
class ApiCall:
    """One request, for tests that count requests or compare the verbs used with RBAC rules."""

    method: str
    group: str
    resource: str  # plural, or plural/subresource
    verb: str
    user_agent: str


@dataclass
class InjectedFault:
    """The next ``remaining`` requests with this verb on this resource (plural[/subresource]) fail."""

    verb: str
    resource: str
    remaining: int
    code: int = 500


class ApiStatusError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@attrs.define(kw_only=True)
class DevKubernetes(kmock.KubernetesScaffold):
    """kmock's scaffold plus a real object store with Kubernetes semantics (see the module doc)."""

    types: dict[tuple[str, str, str], ResourceType] = attrs.field(factory=dict)
    objects: dict[Key, dict[str, Any]] = attrs.field(factory=dict)
    history: deque[tuple[int, tuple[str, str, str], str, dict[str, Any]]] = attrs.field(
        factory=lambda: deque(maxlen=HISTORY))
    calls: list[ApiCall] = attrs.field(factory=list)
    faults: list[InjectedFault] = attrs.field(factory=list)
    revision: int = 1
    changed: asyncio.Condition = attrs.field(factory=asyncio.Condition)
    crd_schemas: dict[tuple[str, str, str], dict[str, Any]] = attrs.field(factory=dict)
    enforce_validation_rules: bool = True  # False: a cluster that ignores x-kubernetes-validations (< 1.25)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource_type in BUILTIN_TYPES:
            self.register(resource_type)
        namespaces = self.types[("", "v1", "namespaces")]
        for name in SYSTEM_NAMESPACES:  # as every cluster starts
            self.revision += 1
            self.objects[self._key(namespaces, None, name)] = {
                "apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
                "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1,
                             "resourceVersion": str(self.revision),
                             "labels": {"kubernetes.io/metadata.name": name}}}

    def register(self, resource_type: ResourceType) -> None:
        self.types[(resource_type.group, resource_type.version, resource_type.plural)] = resource_type
        self.resources[kmock.resource(resource_type.group, resource_type.version, resource_type.plural)] = \
            kmock.ResourceInfo(
                kind=resource_type.kind,
                singular=resource_type.kind.lower(),
                namespaced=resource_type.namespaced,
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                shortnames=set(resource_type.short_names),
                categories=set(resource_type.categories),
                subresources=({"status"} if resource_type.status_subresource else set()) |
                set(resource_type.subresources),
            )

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve a CustomResourceDefinition's resource (every served version)."""
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            self.register(ResourceType(
                group=spec["group"], version=version["name"], plural=spec["names"]["plural"],
                kind=spec["names"]["kind"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status_subresource="status" in (version.get("subresources") or {}),
                short_names=tuple(spec["names"].get("shortNames", ())),
                categories=tuple(spec["names"].get("categories", ())),
                printer_columns=tuple(version.get("additionalPrinterColumns", ())),
            ))
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                check_rules_compile(schema)
                self.crd_schemas[(spec["group"], version["name"], spec["names"]["plural"])] = schema

    def fail_next(self, verb: str, resource: str, count: int, code: int = 500) -> InjectedFault:
        """Tests: make the next ``count`` matching requests fail with ``code``, as an API server under strain."""
        fault = InjectedFault(verb, resource, count, code)
        self.faults.append(fault)
        return fault

    def _injected(self, verb: str, resource: str) -> aiohttp.web.Response | None:
        for fault in self.faults:
            if fault.remaining > 0 and (fault.verb, fault.resource) == (verb, resource):
                fault.remaining -= 1
                return _status_response(fault.code, "InternalError", f"injected fault on {verb} {resource}")
        return None

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        """/version: the release whose API (and OpenAPI definitions) this server imitates."""
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-walkme-dic-dev", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a", "compiler": "n/a",
                "platform": "linux/amd64"}

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """Discovery as the API server gives it: subresources carry no short names or categories."""
        payload: Any = await super()._serve_version(request)
        payload["groupVersion"] = payload["groupVersion"].lstrip("/")  # the core group is "v1", not "/v1"
        for entry in payload.get("resources", []):
            if "/" in entry["name"]:
                entry["shortNames"], entry["categories"] = [], []
        return payload

    # ---- HTTP entry point -------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Content negotiation, OpenAPI, and every request on a served resource; kmock serves the rest.

        Resource requests bypass kmock's request parsing (it reads bodies as UTF-8 text and reads
        /api/v1/namespaces[/NAME] as a namespace prefix).
        """
        refused = negotiation.refusal(raw_request.headers)
        if refused is not None:
            return _status_response(*refused)
        if raw_request.path.startswith("/openapi/"):
            return self._serve_openapi(raw_request)
        target = self._target(raw_request.path)
        if target is None:
            return await super().__call__(raw_request)
        rtype, namespace, name, sub = target
        plural = f"{rtype.plural}/{sub}" if sub else rtype.plural
        verb = _raw_verb(raw_request, name)
        self.calls.append(ApiCall(raw_request.method.upper(), rtype.group, plural, verb,
                                  raw_request.headers.get("User-Agent", "")))
        injected = self._injected(verb, plural)
        if injected is not None:
            return injected
        dry_run = DRY_RUN.set(raw_request.query.get("dryRun") == "All")
        warnings = WARNINGS.set([])
        try:
            response = await self._serve(raw_request, rtype, namespace, name, sub)
            if not response.prepared:
                for text in WARNINGS.get():
                    response.headers.add("Warning", "299 - " + json.dumps(text))
            return response
        except ApiStatusError as error:
            return _status_response(error.code, error.reason, error.message)
        except AdmissionError as error:
            return aiohttp.web.json_response(error.status(), status=422)
        finally:
            DRY_RUN.reset(dry_run)
            WARNINGS.reset(warnings)

    def _target(self, path: str) -> tuple[ResourceType, str | None, str | None, str | None] | None:
        """(type, namespace, name, subresource) of a resource path this store serves, else None."""
        match = NAMESPACE_PATH.match(path)
        if match:
            return self.types[("", "v1", "namespaces")], None, match.group(1), None
        try:
            parsed = parsing.parse_path(path)
        except ValueError:
            return None
        if parsed is None or parsed.plural is None:
            return None
        rtype = self.types.get((parsed.group or "", parsed.version or "", parsed.plural))
        if rtype is None:
            return None
        return rtype, parsed.namespace, parsed.name, parsed.subresource

    def _serve_openapi(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        documents = OpenAPIDocuments(self.types.values(), self.crd_schemas)
        path = raw.path.rstrip("/")
        if path == "/openapi/v2":  # __call__ already answered 406 to a client that does not take JSON
            return aiohttp.web.json_response(documents.v2())
        if path == "/openapi/v3":
            return aiohttp.web.json_response(documents.v3_root())
        document = documents.v3(path.removeprefix("/openapi/v3/"))
        if document is None:
            return _status_response(404, "NotFound", f"the server could not find the requested resource ({path})")
        return aiohttp.web.json_response(document)

    async def _serve(
        self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, namespace: str | None, name: str | None,
        sub: str | None,
    ) -> aiohttp.web.StreamResponse:
        method = raw.method.upper()
        query = dict(raw.query)
        validation = query.get("fieldValidation", "Warn")
        table = "as=Table" in raw.headers.get("Accept", "")
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, namespace, name, query)
        if method == "GET" and name is None:
            listing = self.list_objects(rtype, namespace, query.get("labelSelector"), query.get("fieldSelector"))
            if table:
                return aiohttp.web.json_response(render_table(rtype, listing["items"], datetime.now(UTC)))
            return aiohttp.web.json_response(listing)
        content_type = raw.headers.get("Content-Type", "")
        try:
            body = negotiation.decode_body(await raw.read(), content_type)
        except UnsupportedKind as error:
            raise ApiStatusError(415, "UnsupportedMediaType", f"{negotiation.UNSUPPORTED_MESSAGE}; protobuf of "
                                                              f"{error} is not decoded") from error
        except ValueError as error:
            raise ApiStatusError(400, "BadRequest", str(error)) from error
        if isinstance(body, list) and (method != "PATCH" or name is None):  # only a JSON patch decodes to a list
            raise ApiStatusError(400, "BadRequest", f"{method} needs an object as its body")
        if method == "POST" and name is None:
            return aiohttp.web.json_response(await self.create(rtype, namespace, body, validation), status=201)
        if name is None:
            raise ApiStatusError(405, "MethodNotAllowed", f"{method} needs an object name")
        if method == "GET" and sub == "log":
            return await self._pod_log(raw, namespace, name)
        if method == "GET":
            found = self.get(rtype, namespace, name)
            if table:
                return aiohttp.web.json_response(render_table(rtype, [found], datetime.now(UTC)))
            return aiohttp.web.json_response(found)
        if isinstance(body, list):
            return aiohttp.web.json_response(await self.json_patch(rtype, namespace, name, body,
                                                                   status=sub == "status", validation=validation))
        if method == "PATCH":
            if negotiation.APPLY_PATCH in content_type:
                applied, created = await self.server_side_apply(rtype, namespace, name, body, status=sub == "status",
                                                                validation=validation)
                return aiohttp.web.json_response(applied, status=201 if created else 200)
            return aiohttp.web.json_response(await self.patch(rtype, namespace, name, body, status=sub == "status",
                                                              validation=validation))
        if method == "PUT":
            return aiohttp.web.json_response(await self.replace(rtype, namespace, name, body, status=sub == "status",
                                                                validation=validation))
        if method == "DELETE":
            if "All" in (body.get("dryRun") or ()):  # DeleteOptions carry dryRun in the body
                DRY_RUN.set(True)
            return aiohttp.web.json_response(await self.delete(rtype, namespace, name))
        raise ApiStatusError(405, "MethodNotAllowed", f"{method} is not supported")

    async def _pod_log(
        self, raw: aiohttp.web.BaseRequest, namespace: str | None, name: str,
    ) -> aiohttp.web.StreamResponse:
        """pods/NAME/log: proxied to the kubelet of the Pod's node, as the API server does."""
        pod = self.get(self.types[("", "v1", "pods")], namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise ApiStatusError(400, "BadRequest", f'pod "{name}" does not have a host assigned')
        node = self.get(self.types[("", "v1", "nodes")], None, node_name)
        address = next((a["address"] for a in (node.get("status") or {}).get("addresses", [])
                        if a.get("type") == "InternalIP"), "127.0.0.1")
        port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        container = raw.query.get("container") or pod["spec"]["containers"][0]["name"]
        url = f"http://{address}:{port}/containerLogs/{namespace}/{name}/{container}"
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        async with aiohttp.ClientSession() as session, session.get(url, params=dict(raw.query)) as upstream:
            if upstream.status != 200:
                raise ApiStatusError(upstream.status, "BadRequest", await upstream.text())
            await response.prepare(raw)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response

    # ---- store operations ---------------------------------------------------------------------

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return (rtype.group, rtype.version, rtype.plural, namespace if rtype.namespaced else None, name)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        found = self.objects.get(self._key(rtype, namespace, name))
        if found is None:
            raise ApiStatusError(404, "NotFound", f'{rtype.plural} "{name}" not found')
        return copy.deepcopy(found)

    def list_objects(
        self, rtype: ResourceType, namespace: str | None, label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        """The stored objects themselves, not copies: callers serialize the list before they await."""
        items = list(self._matching(rtype, namespace, label_selector, field_selector))
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": {"resourceVersion": str(self.revision)},
            "items": items,
        }

    def _matching(
        self, rtype: ResourceType, namespace: str | None, label_selector: str | None, field_selector: str | None,
    ) -> Iterable[dict[str, Any]]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        kind = (rtype.group, rtype.version, rtype.plural)
        of_kind = sorted(((key[3] or "", key[4]), obj) for key, obj in self.objects.items() if key[:3] == kind)
        for (ns, _), obj in of_kind:
            if namespace and rtype.namespaced and ns != namespace:
                continue
            if matches(obj, labels, fields):
                yield obj

    async def create(
        self, rtype: ResourceType, namespace: str | None, body: dict[str, Any], validation: str = "Warn",
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiStatusError(422, "Invalid", f'{rtype.kind} "" is invalid: metadata.name: Required value: '
                                                 "name or generateName is required")
        if rtype.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiStatusError(409, "AlreadyExists", f'{rtype.plural} "{meta["name"]}" already exists')
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        if rtype.status_subresource and rtype.plural != "pods":
            obj.pop("status", None)
        _fold_string_data(obj)
        obj = self._admit(rtype, obj, None, validation)
        meta = obj["metadata"]
        meta.update({"uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1})
        builtin_defaults(rtype, obj)
        await self._commit(rtype, key, obj, "ADDED")
        return copy.deepcopy(obj)

    def _admit(
        self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, validation: str,
    ) -> dict[str, Any]:
        """Custom resources: pruning, defaults, schema, CEL; built-in kinds: unknown fields dropped.

        Unknown fields refuse the write under ``fieldValidation=Strict`` (kubectl's default) and become
        ``Warning`` headers under ``Warn`` (every other client's default), as in the API server.
        """
        schema = self.crd_schemas.get((rtype.group, rtype.version, rtype.plural))
        if schema is not None:
            admitted = admit(rtype.kind, rtype.group, schema, obj, old, rules=self.enforce_validation_rules)
            stored, pruned = admitted.obj, admitted.pruned
        else:
            pruned = []
            builtin = builtin_schema(rtype.group, rtype.version, rtype.kind)
            stored = prune(obj, builtin, "", pruned, resolve_ref) if builtin is not None else obj
        unknown = [f'unknown field "{path}"' for path in pruned]
        if unknown and validation == "Strict":
            raise ApiStatusError(400, "BadRequest", f'{rtype.kind} in version "{rtype.version}" cannot be handled '
                                                    f"as a {rtype.kind}: strict decoding error: {', '.join(unknown)}")
        if validation == "Warn":
            WARNINGS.get().extend(unknown)
        return stored

    async def server_side_apply(
        self, rtype: ResourceType, namespace: str | None, name: str, body: dict[str, Any], *, status: bool,
        validation: str,
    ) -> tuple[dict[str, Any], bool]:
        """``application/apply-patch+yaml``: create when absent, else merge the applied fields in.

        Field ownership (managedFields) is not tracked: a field removed from the applied configuration
        stays, and applying over another manager's value never conflicts.
        """
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise ApiStatusError(400, "BadRequest", f'the name of the object ({meta["name"]}) does not match the '
                                                    f"name on the URL ({name})")
        if self._key(rtype, namespace, name) not in self.objects:
            created = await self.create(rtype, namespace, {**body, "metadata": {**meta, "name": name}}, validation)
            return created, True
        applied = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        return await self.patch(rtype, namespace, name, applied, status=status, validation=validation), False

    async def patch(
        self, rtype: ResourceType, namespace: str | None, name: str, patch: dict[str, Any], *, status: bool,
        validation: str = "Warn",
    ) -> dict[str, Any]:
        current = self.get(rtype, namespace, name)
        if status:
            updated = copy.deepcopy(current)
            if "status" in patch:
                updated["status"] = merge_patch(current.get("status") or {}, patch["status"])
        else:
            if rtype.status_subresource:
                patch = {k: v for k, v in patch.items() if k != "status"}
            updated = merge_patch(current, patch)
        return await self._update(rtype, current, updated, validation)

    async def json_patch(
        self, rtype: ResourceType, namespace: str | None, name: str, operations: list[Any], *, status: bool,
        validation: str = "Warn",
    ) -> dict[str, Any]:
        """RFC 6902 patch of the stored object; like any write, only its part (object or status) counts."""
        current = self.get(rtype, namespace, name)
        try:
            patched = apply_json_patch(current, operations)
        except JSONPatchError as error:
            raise ApiStatusError(422, "Invalid", str(error)) from error
        updated = copy.deepcopy(current)
        if status:
            updated["status"] = patched.get("status")
        else:
            updated = patched
            if rtype.status_subresource:
                updated["status"] = current.get("status")
        return await self._update(rtype, current, updated, validation)

    async def replace(
        self, rtype: ResourceType, namespace: str | None, name: str, body: dict[str, Any], *, status: bool,
        validation: str = "Warn",
    ) -> dict[str, Any]:
        current = self.get(rtype, namespace, name)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise ApiStatusError(409, "Conflict", "the object has been modified; please apply your changes "
                                                  "to the latest version and try again")
        updated = copy.deepcopy(current)
        if status:
            updated["status"] = body.get("status")
        else:
            updated = {**copy.deepcopy(body), "metadata": {**current["metadata"], **body.get("metadata", {})}}
            if rtype.status_subresource:
                updated["status"] = current.get("status")
        return await self._update(rtype, current, updated, validation)

    async def _update(
        self, rtype: ResourceType, current: dict[str, Any], updated: dict[str, Any], validation: str = "Warn",
    ) -> dict[str, Any]:
        meta = updated.setdefault("metadata", {})
        for immutable in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        updated["apiVersion"], updated["kind"] = rtype.api_version, rtype.kind
        _fold_string_data(updated)
        updated = self._admit(rtype, updated, current, validation)
        meta = updated["metadata"]
        if updated == current:
            return current  # a no-op write changes nothing, not even resourceVersion
        if _spec_part(updated) != _spec_part(current):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            await self._remove(rtype, key, updated)
            return updated
        await self._commit(rtype, key, updated, "MODIFIED")
        return copy.deepcopy(updated)

    async def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        current = self.get(rtype, namespace, name)
        key = self._key(rtype, namespace, name)
        if current["metadata"].get("finalizers"):
            if not current["metadata"].get("deletionTimestamp"):
                current["metadata"]["deletionTimestamp"] = _now()
                await self._commit(rtype, key, current, "MODIFIED")
            return current
        await self._remove(rtype, key, current)
        return current

    async def _remove(self, rtype: ResourceType, key: Key, obj: dict[str, Any]) -> None:
        if DRY_RUN.get():
            return
        self.objects.pop(key, None)
        await self._commit(rtype, key, obj, "DELETED", store=False)
        await self._collect_garbage(obj["metadata"].get("uid"))
        if (rtype.group, rtype.plural) == ("", "namespaces"):  # the namespace controller empties it
            for inside in [k for k in self.objects if k[3] == key[4]]:
                if inside in self.objects:
                    await self.delete(self.types[inside[:3]], inside[3], inside[4])

    async def _collect_garbage(self, owner_uid: str | None) -> None:
        """Background cascading deletion: dependents of a deleted owner go too."""
        dependents = [
            (key, obj) for key, obj in list(self.objects.items())
            if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]
        for key, _ in dependents:
            if key in self.objects:
                await self.delete(self.types[key[:3]], key[3], key[4])

    async def _commit(
        self, rtype: ResourceType, key: Key, obj: dict[str, Any], event: str, *, store: bool = True,
    ) -> None:
        if DRY_RUN.get():  # ?dryRun=All: admitted and answered, never stored (kubectl diff, --dry-run=server)
            return
        async with self.changed:
            self.revision += 1
            obj["metadata"]["resourceVersion"] = str(self.revision)
            if store:
                self.objects[key] = obj
            self.history.append((self.revision, key[:3], event, copy.deepcopy(obj)))
            self.changed.notify_all()

    # ---- watch --------------------------------------------------------------------------------

    def _history_after(self, position: int) -> list[tuple[int, tuple[str, str, str], str, dict[str, Any]]]:
        """History entries newer than ``position``, walking back from the newest (cheap for a live watch)."""
        newer = []
        for entry in reversed(self.history):
            if entry[0] <= position:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    async def _watch(
        self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, namespace: str | None, name: str | None,
        query: dict[str, str],
    ) -> aiohttp.web.StreamResponse:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        if name:
            fields["metadata.name"] = name
        since = query.get("resourceVersion") or "0"
        timeout = float(query.get("timeoutSeconds") or 3600)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        position = int(since) if since.isdecimal() else 0
        if position == 0:
            for obj in list(self._matching(rtype, namespace, None, None)):
                if matches(obj, labels, fields):
                    await _send(response, "ADDED", obj)
            position = self.revision
        elif self.history and position < self.history[0][0] - 1:
            await _send(response, "ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                            "reason": "Expired", "message": f"too old resource version: {since}"})
            return response
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                pending = self._history_after(position)
                for revision, resource, event, obj in pending:
                    position = revision
                    if resource != (rtype.group, rtype.version, rtype.plural):
                        continue
                    in_namespace = not namespace or obj["metadata"].get("namespace") == namespace
                    if in_namespace and matches(obj, labels, fields):
                        await _send(response, event, obj)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                async with self.changed:
                    if self.revision <= position:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 5.0))
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        return response


# ---- pure helpers ------------------------------------------------------------------------------

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`."""
    if not text:
        return []
    requirements: list[Requirement] = []
    for raw_part in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        part = raw_part.strip()
        if not part:
            continue
        set_match = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if set_match:
            values = tuple(v.strip() for v in set_match.group(3).split(",") if v.strip())
            requirements.append((set_match.group(1), set_match.group(2), values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append((key.strip(), "!=", (value.strip(),)))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            requirements.append((key.strip(), "=", (value.strip(),)))
        elif part.startswith("!"):
            requirements.append((part[1:].strip(), "!exists", ()))
        else:
            requirements.append((part, "exists", ()))
    return requirements


def parse_field_selector(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return {k.strip(): v.strip() for k, v in (p.replace("==", "=").split("=", 1) for p in text.split(",") if p)}


def matches(obj: dict[str, Any], labels: list[Requirement], fields: dict[str, str]) -> bool:
    meta = obj.get("metadata") or {}
    have = meta.get("labels") or {}
    for key, op, values in labels:
        ok = {
            "=": lambda k=key, v=values: have.get(k) == v[0],
            "!=": lambda k=key, v=values: have.get(k) != v[0],
            "in": lambda k=key, v=values: have.get(k) in v,
            "notin": lambda k=key, v=values: have.get(k) not in v,
            "exists": lambda k=key: k in have,
            "!exists": lambda k=key: k not in have,
        }[op]()
        if not ok:
            return False
    for path, value in fields.items():
        found: Any = obj
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if ("" if found is None else str(found)) != value:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _fold_string_data(obj: dict[str, Any]) -> None:
    if obj.get("kind") == "Secret" and obj.get("stringData"):
        data = obj.setdefault("data", {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def builtin_defaults(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """What built-in admission and registry strategies add on create (the parts clients look at)."""
    if (rtype.group, rtype.plural) == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
    elif (rtype.group, rtype.plural) == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    elif (rtype.group, rtype.plural) == ("batch", "jobs"):
        # The Job registry: a selector on the Job's uid and matching labels on its pod template.
        meta, spec = obj["metadata"], obj.setdefault("spec", {})
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
            template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
            template_meta.setdefault("labels", {}).update({
                "batch.kubernetes.io/controller-uid": meta["uid"], "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": meta["uid"], "job-name": meta["name"]})
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)


def _raw_verb(raw: aiohttp.web.BaseRequest, name: str | None) -> str:
    method = raw.method.upper()
    if method == "GET":
        return "watch" if raw.query.get("watch") in ("true", "1") else "get" if name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


async def _send(response: aiohttp.web.StreamResponse, event: str, obj: dict[str, Any]) -> None:
    await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")


def _status_response(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code,
         "reason": reason, "message": message}, status=code)
