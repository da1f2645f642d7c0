"""An in-memory Kubernetes API server for tests and the demo, built on kmock's KubernetesScaffold.

kmock 0.8 gives the HTTP server, request parsing (resource, namespace, name, subresource, action),
discovery documents and Kubernetes-style error bodies. Its ``KubernetesEmulator`` stores objects
as plain merged dicts, so this class keeps its own store and implements what kopf and our
controllers rely on:

* metadata.uid, a global resourceVersion bumped on every write, creationTimestamp, generateName;
* metadata.generation: 1 on create, bumped only when something outside metadata/status changes;
* the status subresource: writes to ``/status`` change only status, writes to the object ignore it;
* JSON merge patch (null deletes; strategic merge is treated as merge), PUT as replace;
* label selectors (=, ==, !=, in, notin, exists, !exists) and metadata.name/namespace field selectors;
* list responses with ``kind: <Kind>List`` and a resourceVersion; watch streams resuming after a
  resourceVersion (410 Gone when it is too old), with timeoutSeconds;
* finalizers and deletionTimestamp; garbage collection of dependents through ownerReferences;
* ``Accept: application/json;as=Table`` rendered from a CRD's additionalPrinterColumns, so that
  ``kubectl get`` prints the same columns as a real cluster;
* Secrets' stringData folded into base64 data, as the real API does;
* for tests, :meth:`DevKubernetes.fail_next` makes chosen requests fail (a 500 on a status write).

Field selectors match any dotted field path by string equality (kubectl describe uses
involvedObject.*). Not emulated: admission (CRD schema validation, CEL rules, defaults), RBAC and authentication,
server-side apply, JSON patch, field managers, resource quotas, watch bookmarks, pagination
(``limit``/``continue`` return everything at once), and any controller except garbage collection
(Jobs are run by :mod:`walkme_dic.devcluster.kubelet`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
from kmock._internal import rendering

from walkme_dic.devcluster.printing import render_table

Key = tuple[str, str, str, str | None, str]  # group, version, plural, namespace, name
HISTORY = 50_000
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

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN_TYPES = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True, short_names=("ns",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("", "v1", "pods", "Pod", status_subresource=True, short_names=("po",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType("batch", "v1", "jobs", "Job", status_subresource=True),
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

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource_type in BUILTIN_TYPES:
            self.register(resource_type)

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
                subresources={"status"} if resource_type.status_subresource else set(),
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

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """Discovery as the API server gives it: subresources carry no short names or categories."""
        payload: Any = await super()._serve_version(request)
        for entry in payload.get("resources", []):
            if "/" in entry["name"]:
                entry["shortNames"], entry["categories"] = [], []
        return payload

    # ---- HTTP entry point -------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's path parser reads /api/v1/namespaces[/NAME] as a namespace prefix; serve those here."""
        match = NAMESPACE_PATH.match(raw_request.path)
        if not match:
            return await super().__call__(raw_request)
        rtype = self.types[("", "v1", "namespaces")]
        name = match.group(1)
        body = await raw_request.json() if raw_request.can_read_body else {}
        method = raw_request.method.upper()
        verb = {"GET": "get" if name else "list", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
        if raw_request.query.get("watch") in ("true", "1"):
            verb["GET"] = "watch"
        self.calls.append(ApiCall(method, "", "namespaces", verb.get(method, method.lower()),
                                  raw_request.headers.get("User-Agent", "")))
        try:
            if method == "GET" and raw_request.query.get("watch") in ("true", "1"):
                return await self._watch(raw_request, rtype, None, name, dict(raw_request.query))
            if method == "GET" and name is None:
                return aiohttp.web.json_response(self.list_objects(rtype, None, raw_request.query.get("labelSelector")))
            if method == "GET":
                return aiohttp.web.json_response(self.get(rtype, None, name))
            if method == "POST":
                return aiohttp.web.json_response(await self.create(rtype, None, body), status=201)
            if method == "PATCH" and name:
                return aiohttp.web.json_response(await self.patch(rtype, None, name, body, status=False))
            if method == "DELETE" and name:
                return aiohttp.web.json_response(await self.delete(rtype, None, name))
            raise ApiStatusError(405, "MethodNotAllowed", f"{method} is not supported for namespaces")
        except ApiStatusError as error:
            return _status_response(error.code, error.reason, error.message)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        resource = request.resource
        resource_type = None
        if resource is not None:
            resource_type = self.types.get((resource.group or "", resource.version or "", resource.plural or ""))
        if resource_type is None or request._raw_request is None:
            return await super()._handle(request)
        plural = f"{resource_type.plural}/{request.subresource}" if request.subresource else resource_type.plural
        verb = _verb(request)
        self.calls.append(ApiCall(request.method.value.upper(), resource_type.group, plural, verb,
                                  request.headers.get("User-Agent", "")))
        injected = self._injected(verb, plural)
        if injected is not None:
            return injected
        try:
            return await self._serve(request, resource_type, request._raw_request)
        except ApiStatusError as error:
            return _status_response(error.code, error.reason, error.message)

    async def _serve(
        self, request: rendering.Request, rtype: ResourceType, raw: aiohttp.web.BaseRequest,
    ) -> aiohttp.web.StreamResponse:
        method, namespace, name = raw.method.upper(), request.namespace, request.name
        sub = request.subresource
        query = dict(raw.query)
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, namespace, name, query)
        if method == "GET" and name is None:
            listing = self.list_objects(rtype, namespace, query.get("labelSelector"), query.get("fieldSelector"))
            if "as=Table" in raw.headers.get("Accept", ""):
                return aiohttp.web.json_response(render_table(rtype, listing["items"], datetime.now(UTC)))
            return aiohttp.web.json_response(listing)
        body = request.data if isinstance(request.data, dict) else {}
        if method == "POST" and name is None:
            return aiohttp.web.json_response(await self.create(rtype, namespace, body), status=201)
        if name is None:
            raise ApiStatusError(405, "MethodNotAllowed", f"{method} needs an object name")
        if method == "GET":
            found = self.get(rtype, namespace, name)
            if "as=Table" in raw.headers.get("Accept", ""):
                return aiohttp.web.json_response(render_table(rtype, [found], datetime.now(UTC)))
            return aiohttp.web.json_response(found)
        if method == "PATCH":
            content_type = raw.headers.get("Content-Type", "")
            if "json-patch" in content_type:
                raise ApiStatusError(415, "UnsupportedMediaType", "JSON patch is not emulated; use a merge patch")
            return aiohttp.web.json_response(await self.patch(rtype, namespace, name, body, status=sub == "status"))
        if method == "PUT":
            return aiohttp.web.json_response(await self.replace(rtype, namespace, name, body, status=sub == "status"))
        if method == "DELETE":
            return aiohttp.web.json_response(await self.delete(rtype, namespace, name))
        raise ApiStatusError(405, "MethodNotAllowed", f"{method} is not supported")

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

    async def create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiStatusError(422, "Invalid", "metadata.name: Required value")
        if rtype.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        key = self._key(rtype, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiStatusError(409, "AlreadyExists", f'{rtype.plural} "{meta["name"]}" already exists')
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        if rtype.status_subresource and rtype.plural != "pods":
            obj.pop("status", None)
        _fold_string_data(obj)
        meta.update({"uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1})
        await self._commit(rtype, key, obj, "ADDED")
        return copy.deepcopy(obj)

    async def patch(
        self, rtype: ResourceType, namespace: str | None, name: str, patch: dict[str, Any], *, status: bool,
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
        return await self._update(rtype, current, updated)

    async def replace(
        self, rtype: ResourceType, namespace: str | None, name: str, body: dict[str, Any], *, status: bool,
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
        return await self._update(rtype, current, updated)

    async def _update(self, rtype: ResourceType, current: dict[str, Any], updated: dict[str, Any]) -> dict[str, Any]:
        meta = updated.setdefault("metadata", {})
        for immutable in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
            if immutable in current["metadata"]:
                meta[immutable] = current["metadata"][immutable]
            else:
                meta.pop(immutable, None)
        updated["apiVersion"], updated["kind"] = rtype.api_version, rtype.kind
        _fold_string_data(updated)
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
        self.objects.pop(key, None)
        await self._commit(rtype, key, obj, "DELETED", store=False)
        await self._collect_garbage(obj["metadata"].get("uid"))

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
        position = int(since) if since.isdigit() else 0
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


def _verb(request: rendering.Request) -> str:
    if request.method.value.upper() == "PUT":
        return "update"
    action = request.action.value.lower() if request.action is not None else ""
    return {"fetch": "get", "update": "patch"}.get(action, action)


async def _send(response: aiohttp.web.StreamResponse, event: str, obj: dict[str, Any]) -> None:
    await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")


def _status_response(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code,
         "reason": reason, "message": message}, status=code)
