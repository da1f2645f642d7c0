"""The real kube-apiserver admits our custom resources: it prunes unknown fields, fills in defaults, checks
the OpenAPI schema and every x-kubernetes-validations (CEL) rule of the CRDs in crds/.

Every rule in crds/*.yaml has a case here (a spec it accepts and one it refuses); a new rule without a
case fails `test_every_rule_in_the_crds_has_a_case`. The manifest mistakes of
tests/unit/test_invalid_manifests.py are sent here too: what the API server refuses is its own verdict.
Creates and updates are dry runs (``?dryRun=All``) in one namespace kept for the module; a rule that
reads ``oldSelf`` is checked by dry-run updates of an object that was really created.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from tests.operator.helpers import eventually, without_rules
from tests.unit.manifests import load_documents
from tests.unit.test_invalid_manifests import (
    DELETE,
    ENCODINGS,
    FIELD_COUNTS,
    INBOUND,
    MISTAKES,
    OUTBOUND,
    S3,
    SFTP,
    changed,
    fields,
    manifest,
)
from walkme_dic.kube import ApiError
from walkme_dic_dev.cluster import Cluster, load_crds
from walkme_dic_dev.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
API = "integrations.walkme.io/v1alpha1"
GROUP = "integrations.walkme.io"
NS = "admission"
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in load_crds()}
SCHEMAS = {kind: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for kind, crd in CRDS.items()}

WALKME = {"walkme": {"apiUrl": "https://api.walkme.com", "auth": {"secretRef": {"name": "walkme-api"}}}}
FILE = {"file": {"path": "users.csv"}}
WALKME_DEST = INBOUND["destination"]
BOOLEAN_FIELD = {"source": "is_customer", "destination": "isCustomer", "type": "boolean"}
TIMESTAMP_FIELD = {"source": "last_seen", "destination": "lastSeen", "type": "timestamp"}
Verdict = dict[str, Any] | ApiError


@pytest.fixture(scope="module")
async def api(control_plane: ControlPlane, crds_installed: None) -> AsyncIterator[Cluster]:
    """The admin's client and the namespace NS, for the whole module: dry runs leave nothing to clean up
    between tests, and deleting a namespace per test would cost more than the tests."""
    async with Cluster(control_plane) as admin:
        await admin.ensure_namespace(NS)
        try:
            yield admin
        finally:
            await admin.reset()


def obj(kind: str, spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": copy.deepcopy(spec)}


async def send(cluster: Cluster, method: str, body: dict[str, Any], *, strict: bool = False,
               sub: str | None = None, dry_run: bool = True) -> Verdict:
    """``body`` POSTed (created) or PUT/PATCHed onto the stored object of its name, in NS; the admitted object
    or the refusal. ``strict``: unknown fields are refused (as ``kubectl apply`` asks) instead of pruned."""
    body = {**body, "metadata": {**body["metadata"], "namespace": NS}}
    resource = await cluster.resource(body["apiVersion"], body["kind"])
    path = resource.path(NS, None if method == "POST" else body["metadata"]["name"], sub)
    query = "&".join([*(["dryRun=All"] if dry_run else []), *(["fieldValidation=Strict"] if strict else [])])
    content_type = "application/merge-patch+json" if method == "PATCH" else None
    try:
        return await cluster.client.request(method, f"{path}?{query}", body, content_type)
    except ApiError as error:
        return error


async def create(cluster: Cluster, body: dict[str, Any], strict: bool = False) -> Verdict:
    return await send(cluster, "POST", body, strict=strict)


async def stored(cluster: Cluster, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` really created (no dry run), for the updates that follow."""
    created = await send(cluster, "POST", body, dry_run=False)
    assert not isinstance(created, ApiError), created
    return created


async def update(cluster: Cluster, current: dict[str, Any], spec: dict[str, Any]) -> Verdict:
    """A dry-run PUT of ``current`` with ``spec``."""
    return await send(cluster, "PUT", {**current, "spec": copy.deepcopy(spec)})


def admitted(verdict: Verdict) -> dict[str, Any]:
    assert not isinstance(verdict, ApiError), f"the API server refused it: {verdict}"
    return verdict


def refused(verdict: Verdict, status: int = 422) -> str:
    assert isinstance(verdict, ApiError), f"the API server admitted it: {verdict.get('spec')}"
    assert verdict.status == status, verdict
    return verdict.message


def rules_in(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every x-kubernetes-validations rule of a schema, with the path of the node that carries it."""
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations", ())]
    for key, sub in (schema.get("properties") or {}).items():
        found += rules_in(sub, f"{path}.{key}" if path else key)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += rules_in(schema[key], path + "[*]")
    return found


@dataclass(frozen=True)
class RuleCase:
    """A spec the rule accepts and one it refuses (``old`` set: both are updates of an object stored with it)."""

    accepted: dict[str, Any]
    refused: dict[str, Any]
    old: dict[str, Any] | None = None
    rule: str = ""  # part of the rule's message, where one path carries several rules


def without_walkme(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with no walkmeConnectionRef (exportFiles calls no WalkMe API; every other source does)."""
    return {key: value for key, value in spec.items() if key != "walkmeConnectionRef"}


EXPORTS = {**OUTBOUND, "source": {"walkme": {"dataset": "exportFiles",
                                             "exportFiles": {"connectionRef": {"name": "exports"}}}}}
RULE_CASES: dict[tuple[str, str], list[RuleCase]] = {
    ("Connection", "spec"): [
        RuleCase(accepted=WALKME, refused={**WALKME, **S3}),
        RuleCase(accepted=S3, refused={"probeInterval": "10m"}),
    ],
    ("Integration", "spec.connectionRef"): [
        RuleCase(accepted={**INBOUND, "suspend": True}, refused={**INBOUND, "connectionRef": {"name": "other"}},
                 old=INBOUND),
    ],
    ("Integration", "spec.source.walkme.exportFiles.connectionRef"): [
        RuleCase(accepted={**EXPORTS, "suspend": True},
                 refused={**EXPORTS, "source": {"walkme": {"dataset": "exportFiles",
                                                           "exportFiles": {"connectionRef": {"name": "other"}}}}},
                 old=EXPORTS),
    ],
    ("Integration", "spec.source"): [
        RuleCase(accepted=INBOUND, refused={**INBOUND, "source": {**FILE, "salesforce": {"soql": "SELECT Id"}}},
                 rule="set exactly one"),
        RuleCase(accepted=OUTBOUND, refused={**INBOUND, "source": {}}, rule="set exactly one"),
        RuleCase(accepted=EXPORTS, refused={**OUTBOUND, "source": {"walkme": {"dataset": "exportFiles"}}},
                 rule="dataset exportFiles needs exportFiles"),
        RuleCase(accepted={**INBOUND, "source": {"file": {"path": "in/..users../a..b.csv"}}},
                 refused={**INBOUND, "source": {"file": {"path": "in/../../tenant-b/users.csv"}}}, rule="'..' segment"),
        RuleCase(accepted={**INBOUND, "source": {"file": {"path": "/in/users.csv"}}},
                 refused={**INBOUND, "source": {"file": {"path": "in//users.csv"}}}, rule="every segment"),
    ],
    ("Integration", "spec.destination"): [
        RuleCase(accepted=INBOUND, refused={**INBOUND, "destination": {**WALKME_DEST, **FILE}}, rule="set exactly one"),
        RuleCase(accepted={**OUTBOUND, "destination": {"webhook": {"batchSize": 50}}},
                 refused={**OUTBOUND, "destination": {"webhook": {"batchSize": 50}, **FILE}}, rule="set exactly one"),
        RuleCase(accepted={**OUTBOUND, "destination": {"file": {"path": "exports/.hidden/users.csv"}}},
                 refused={**OUTBOUND, "destination": {"file": {"path": "../tenant-b/report.csv"}}},
                 rule="'..' segment"),
        RuleCase(accepted={**OUTBOUND, "destination": {"file": {"path": "exports/users.v1.csv"}}},
                 refused={**OUTBOUND, "destination": {"file": {"path": "./exports/users.csv"}}},
                 rule="every segment"),
        RuleCase(accepted={**OUTBOUND, "destination": {"file": {"path": "out/users.csv.gz", "compression": "gzip"}}},
                 refused={**OUTBOUND, "destination": {"file": {"path": "out/users.csv", "compression": "gzip"}}},
                 rule="compression gzip needs a path ending in .gz"),
        RuleCase(accepted={**OUTBOUND, "destination": {"file": {"path": "out/users.csv", "compression": "none"}}},
                 refused={**OUTBOUND, "destination": {"file": {"path": "out/users.gz", "compression": "none"}}},
                 rule="compression gzip needs a path ending in .gz"),
    ],
    ("Integration", "spec"): [
        RuleCase(accepted=OUTBOUND, refused={**OUTBOUND, "direction": "Inbound"}, rule="Inbound integrations read"),
        RuleCase(accepted=INBOUND, refused={**INBOUND, "direction": "Outbound"}, rule="Inbound integrations read"),
        RuleCase(accepted={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": fields(99)}},
                 refused={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": fields(100)}},
                 rule="at most 100 properties"),
        RuleCase(accepted={**OUTBOUND, "mapping": {**OUTBOUND["mapping"], "fields": [BOOLEAN_FIELD]}},
                 refused={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": [BOOLEAN_FIELD]}},
                 rule="String, Number or Date"),
        RuleCase(accepted={**OUTBOUND, "mapping": {**OUTBOUND["mapping"], "fields": [TIMESTAMP_FIELD]}},
                 refused={**INBOUND, "mapping": {**INBOUND["mapping"], "fields": [TIMESTAMP_FIELD]}},
                 rule="String, Number or Date"),
        RuleCase(accepted={**INBOUND, "mapping": {**INBOUND["mapping"], "emptyValues": "clear"}},
                 refused={**OUTBOUND, "destination": FILE, "mapping": {**OUTBOUND["mapping"], "fields": [
                     {"source": "email", "destination": "Email", "emptyValues": "clear"}]}},
                 rule="clear is for Inbound"),
        RuleCase(accepted={**OUTBOUND, "mapping": {**OUTBOUND["mapping"], "emptyValues": "clear"}},
                 refused={**OUTBOUND, "destination": {"webhook": {"batchSize": 50}},
                          "mapping": {**OUTBOUND["mapping"], "emptyValues": "clear"}},
                 rule="clear is for Inbound"),
        RuleCase(accepted=without_walkme(EXPORTS), refused=without_walkme(OUTBOUND),
                 rule="walkmeConnectionRef: name the WalkMe account Connection"),
    ],
}
CRD_RULES = [(kind, path, rule) for kind, schema in SCHEMAS.items() for path, rule in rules_in(schema)]


def test_every_rule_in_the_crds_has_a_case() -> None:
    rules = {(kind, path) for kind, path, _ in CRD_RULES}
    missing = sorted(rules - set(RULE_CASES))
    assert not missing, f"x-kubernetes-validations rules without a case in RULE_CASES: {missing}"
    assert not set(RULE_CASES) - rules, f"cases for rules that no longer exist: {sorted(set(RULE_CASES) - rules)}"
    for kind, path, rule in CRD_RULES:
        assert any(case.rule in rule["message"] for case in RULE_CASES[(kind, path)]), \
            f"no case for the rule {rule['message']!r} at {kind} {path}"


def rule_cases(kind: str, path: str, rule: dict[str, Any]) -> list[RuleCase]:
    return [case for case in RULE_CASES.get((kind, path), []) if case.rule in rule["message"]]


names = count()


async def case_verdicts(cluster: Cluster, kind: str, case: RuleCase) -> tuple[Verdict, Verdict, str]:
    """(accepted's verdict, refused's verdict, name of the object refused) — a create of each, or, for a
    transition rule, a dry-run update of a really created ``old`` to each."""
    if case.old is None:
        accepted, refusal = await asyncio.gather(create(cluster, obj(kind, case.accepted)),
                                                 create(cluster, obj(kind, case.refused)))
        return accepted, refusal, "x"
    current = await stored(cluster, obj(kind, case.old, f"stored-{next(names)}"))
    accepted, refusal = await asyncio.gather(update(cluster, current, case.accepted),
                                             update(cluster, current, case.refused))
    return accepted, refusal, current["metadata"]["name"]


@pytest.mark.parametrize(("kind", "path", "rule"), CRD_RULES, ids=lambda v: v if isinstance(v, str) else "")
async def test_rule_accepts_and_refuses_with_its_message(api: Cluster, kind: str, path: str,
                                                          rule: dict[str, Any]) -> None:
    cases = rule_cases(kind, path, rule)
    assert cases, f"no case for the rule at {kind} {path}"
    for accepted, refusal, name in await asyncio.gather(*(case_verdicts(api, kind, case) for case in cases)):
        admitted(accepted)
        assert refused(refusal) == \
            f'{kind}.{GROUP} "{name}" is invalid: {path}: Invalid value: {rule["message"]}', \
            "the refused object must fail on this rule alone"


async def test_transition_rules_do_not_run_on_create(api: Cluster) -> None:
    transitions = [case for cases in RULE_CASES.values() for case in cases if case.old is not None]
    assert transitions
    for verdict in await asyncio.gather(*(create(api, obj("Integration", case.refused)) for case in transitions)):
        admitted(verdict)


async def test_schema_errors_are_all_listed_with_their_field(api: Cluster) -> None:
    spec = {**INBOUND, "direction": "Sideways", "maxRejectedPercent": "lots"}
    del spec["mapping"]
    message = refused(await create(api, obj("Integration", spec)))
    assert message.startswith(f'Integration.{GROUP} "x" is invalid: ['), "the causes are listed in brackets"
    assert 'spec.direction: Unsupported value: "Sideways": supported values: "Inbound", "Outbound"' in message
    assert "spec.mapping: Required value" in message
    assert 'spec.maxRejectedPercent: Invalid value: "string": spec.maxRejectedPercent in body must be of type' \
        in message


async def test_type_errors_skip_cel_rules(api: Cluster) -> None:
    message = refused(await create(api, obj("Integration", {**INBOUND, "source": "users.csv"})))
    assert message == f'Integration.{GROUP} "x" is invalid: [spec.source: Invalid value: "string": spec.source in ' \
        'body must be of type object: "string", <nil>: Invalid value: null: some validation rules were not checked ' \
        'because the object was invalid; correct the existing errors to complete validation]'


async def test_unknown_fields_are_pruned_or_refused_when_strict(api: Cluster) -> None:
    sent = obj("Integration", {**INBOUND, "bogus": 1, "source": {"file": {"path": "a.csv", "typo": 2}}})
    sent["metadata"]["labels"] = {"team": "a"}
    pruned, strict = await asyncio.gather(create(api, sent), create(api, sent, strict=True))
    got = admitted(pruned)
    assert "bogus" not in got["spec"] and "typo" not in got["spec"]["source"]["file"]
    assert sent["metadata"].items() <= got["metadata"].items(), "metadata is not pruned"
    message = refused(strict, 400)
    assert 'unknown field "spec.bogus"' in message and 'unknown field "spec.source.file.typo"' in message


def defaults_in(schema: dict[str, Any], path: str = "") -> list[str]:
    found = [path] if "default" in schema else []
    for key, sub in (schema.get("properties") or {}).items():
        found += defaults_in(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), dict):
        found += defaults_in(schema["items"], path + "[*]")
    return found


def filled_defaults(sent: Any, got: Any, schema: dict[str, Any], path: str = "") -> tuple[set[str], list[str]]:
    """(paths of the defaults the server had to fill in, those it filled in wrong): a default is due where
    ``sent`` has the parent object but not the member."""
    due: set[str] = set()
    wrong: list[str] = []

    def walk(sent: Any, got: Any, schema: dict[str, Any], path: str) -> None:
        if isinstance(got, dict):
            for key, sub in (schema.get("properties") or {}).items():
                here = f"{path}.{key}" if path else key
                if "default" in sub and key not in (sent or {}):
                    due.add(here)
                    if got.get(key) != sub["default"]:
                        wrong.append(f"{here}: {got.get(key)!r}, not the default {sub['default']!r}")
                if key in got:
                    walk((sent or {}).get(key), got[key], sub, here)
        elif isinstance(got, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(got):
                walk(sent[index] if isinstance(sent, list) and index < len(sent) else None, item,
                     schema["items"], path + "[*]")

    walk(sent, got, schema, path)
    return due, wrong


EXAMPLES = [pytest.param(doc, id=f"{path.relative_to(ROOT / 'examples')}:{doc['metadata']['name']}")
            for path in sorted((ROOT / "examples").rglob("*.yaml")) for doc in load_documents(path)
            if doc["kind"] in SCHEMAS]
STATUS = {
    "Connection": {"conditions": [{"type": "Ready", "status": "True", "reason": "Probed",
                                   "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
    "Integration": {"conditions": [{"type": "Ready", "status": "True", "reason": "RunSucceeded",
                                    "lastTransitionTime": "2024-01-01T00:00:00Z"}],
                    "lastResult": {"result": "Succeeded", "reason": "RunSucceeded"},
                    "runs": [{"name": "r1", "trigger": "Schedule", "result": "Succeeded"}]},
}
SECRET = {"secretRef": {"name": "creds"}}
# the examples spell out most defaults: each provider without its defaulted fields, and the rest
MORE_SPECS = {
    "Connection": [S3, {"walkme": {"auth": SECRET}}, changed(SFTP, "sftp.path", DELETE),
                   {"azureBlob": {"accountUrl": "https://acme.blob.core.windows.net", "container": "data",
                                  "auth": {"secretRef": {"name": "creds", "key": "sas"}}}},
                   {"salesforce": {"instanceUrl": "https://acme.my.salesforce.com", "auth": SECRET}},
                   {"gcs": {"bucket": "acme-data", "auth": {"secretRef": {"name": "creds", "key": "key.json"}}}},
                   {"webhook": {"url": "https://hooks.acme.example/dic", "auth": SECRET}}],
    "Integration": [OUTBOUND, EXPORTS, {**changed(OUTBOUND, "destination", {"webhook": {}}), "job": {}},
                    changed(OUTBOUND, "destination", {"salesforce": {"object": "Contact", "externalIdField": "X"}})],
}


async def test_every_default_in_the_crds_is_filled_in(api: Cluster) -> None:
    """Creates (the examples and a few more specs) and status writes leave no default of the CRDs unseen."""
    sent = [param.values[0] for param in EXAMPLES] + [obj(kind, spec) for kind, specs in MORE_SPECS.items()
                                                       for spec in specs]
    creates = await asyncio.gather(*(create(api, body) for body in sent))
    currents = await asyncio.gather(*(stored(api, obj(kind, spec, f"status-{kind.lower()}"))
                                      for kind, spec in [("Connection", S3), ("Integration", INBOUND)]))
    statuses = await asyncio.gather(*(send(api, "PATCH", {**current, "status": STATUS[current["kind"]]},
                                           sub="status") for current in currents))
    seen: dict[str, set[str]] = {kind: set() for kind in SCHEMAS}
    wrong: list[str] = []
    written = [current | {"status": STATUS[current["kind"]]} for current in currents]
    for body, verdict in zip([*sent, *written], [*creates, *statuses], strict=True):
        due, bad = filled_defaults({k: body.get(k) for k in ("spec", "status")}, admitted(verdict),
                                   SCHEMAS[body["kind"]])
        seen[body["kind"]] |= due
        wrong += [f"{body['kind']} {body['metadata']['name']}: {b}" for b in bad]
    assert not wrong
    for kind, schema in SCHEMAS.items():
        assert set(defaults_in(schema)) <= seen[kind], f"{kind}: defaults never seen filled in: " \
                                                        f"{sorted(set(defaults_in(schema)) - seen[kind])}"


@pytest.mark.parametrize("doc", EXAMPLES)
async def test_every_example_is_admitted_as_written(api: Cluster, doc: dict[str, Any]) -> None:
    """With ``fieldValidation=Strict``, as ``kubectl apply`` sends it: no unknown field in any example."""
    admitted(await create(api, doc, strict=True))


async def test_rules_are_not_rerun_on_unchanged_values(api: Cluster) -> None:
    """Ratcheting: an object stored before a rule existed still takes status writes and changes elsewhere."""
    broken = obj("Integration", {**INBOUND, "source": {**FILE, "salesforce": {"soql": "SELECT Id"}}}, "before-the-rule")

    async def stored_before_the_rule() -> dict[str, Any] | None:
        # a CRD's new schema reaches the API server's handlers a moment after the CRD is written
        verdict = await send(api, "POST", broken, dry_run=False)
        return None if isinstance(verdict, ApiError) and verdict.status == 422 else admitted(verdict)

    async def rule_is_back() -> bool:
        return isinstance(await create(api, {**broken, "metadata": {"name": "x"}}), ApiError)

    await api.install_crds([without_rules(crd, lambda rule: "source.file" in rule["message"]) for crd in load_crds()])
    try:
        current = await eventually(stored_before_the_rule)
    finally:
        await api.install_crds()
        await eventually(rule_is_back)
    with_status, suspended, moved = await asyncio.gather(
        send(api, "PATCH", {**current, "status": {"activeRun": "r1"}}, sub="status"),
        update(api, current, {**current["spec"], "suspend": True}),  # its rule sees an unchanged source: ratcheted
        update(api, current, changed(current["spec"], "source.file.path", "other.csv")))  # changed: checked again
    assert admitted(with_status)["status"] == {"activeRun": "r1"}
    admitted(suspended)
    assert refused(moved) == f'Integration.{GROUP} "before-the-rule" is invalid: spec.source: Invalid value: ' \
                             "set exactly one of source.file, source.salesforce, source.walkme"


# Mistakes the API server admits: only the operator's models catch them (model validators the CRDs carry no rule for)
APISERVER_ADMITS = {
    "azure without auth", "salesforce without url", "bad cron", "bad time zone", "upsert without external id",
    "report without id", "bad since", "soql and object", "duplicate destination", "active field on outbound",
    "sftp host key without host", "sftp cert-authority line", "gcs anonymous against Google", "unknown encoding",
    "byte transform as encoding",
}
# Mistakes the API server refuses with words other than the field the models name
DIRECTION_RULE = "Inbound integrations read file or salesforce and write walkme"
APISERVER_SAYS = {"inbound reading walkme": DIRECTION_RULE, "outbound writing walkme": DIRECTION_RULE,
                  "webhook on an inbound integration": DIRECTION_RULE}


def test_verdicts_name_only_mistakes_of_the_corpus() -> None:
    assert APISERVER_ADMITS | set(APISERVER_SAYS) <= {m[0] for m in MISTAKES}


@pytest.mark.parametrize(("name", "kind", "spec", "field"), MISTAKES, ids=[m[0] for m in MISTAKES])
async def test_api_server_verdict_on_a_manifest_mistake(api: Cluster, name: str, kind: str, spec: dict[str, Any],
                                                        field: str) -> None:
    """Sent as ``kubectl apply`` sends it (``fieldValidation=Strict``): refused naming the field, or, where only
    the operator's models catch the mistake, admitted (the operator then sets Stalled, reason InvalidSpec)."""
    verdict = await create(api, manifest(kind, spec), strict=True)
    if name in APISERVER_ADMITS:
        admitted(verdict)
    else:
        assert isinstance(verdict, ApiError) and verdict.status in (400, 422), verdict
        assert APISERVER_SAYS.get(name, field) in verdict.message, verdict.message


async def test_inline_secrets_from_a_lenient_client_are_pruned_before_storage(api: Cluster) -> None:
    """A client that does not ask for strict field validation gets the inline secret dropped, never stored."""
    mistakes = {m[0]: m for m in MISTAKES}
    for name, provider, key in [("inline credentials", "s3", "accessKeyId"),
                                ("sftp inline password", "sftp", "password")]:
        _, kind, spec, _ = mistakes[name]
        assert key in spec[provider]
        assert key not in admitted(await create(api, manifest(kind, spec)))["spec"][provider], name


@pytest.mark.parametrize("total", FIELD_COUNTS)
async def test_up_to_100_properties_are_admitted(api: Cluster, total: int) -> None:
    spec = changed(changed(INBOUND, "mapping.fields", fields(total)), "mapping.activeField", "active")
    admitted(await create(api, obj("Integration", spec), strict=True))


async def test_any_text_encoding_python_knows_is_admitted(api: Cluster) -> None:
    for verdict in await asyncio.gather(*(create(api, obj("Integration", changed(INBOUND, "source.file.encoding", e)))
                                          for e in ENCODINGS)):
        admitted(verdict)

