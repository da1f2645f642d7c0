"""The chart's RBAC, judged by the real authorizer and read back from the apiserver's audit log.

The chart is installed by helm (`installed`, tests/e2e/test_helm_install.py) and the operator runs
in-cluster as the chart's ServiceAccount; the audit log (Metadata level) records every request that
user made, with the verb, the resource, the answer's code and the user agent (kopf says `kopf/…`,
our client `walkme-dic-operator`, our leader election `walkme-dic-operator leader-election`).

* A full flow — Connections probed, an Integration run twice with a history of one (so its first
  Job is deleted), Events posted, the leader Pod deleted and the Lease handed over — uses exactly
  what `helm template` grants: nothing beyond it, nothing of it left unused; leader election uses
  exactly its Role.
* Each permission the chart grants, removed alone from the installed ClusterRole/Role and put back
  after: the operator function that needs it fails, the audit log shows that one request refused,
  and the operator's log names what failed. Lists and watches are made when kopf starts, so those
  cases delete the leader Pod and judge the standby that takes over.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_flows import inbound, put, request_run
from tests.e2e.test_helm_install import (
    LEASE,
    OPERATOR_USER,
    RELEASE,
    Release,
    granted,
    installed,
    permission,
)
from tests.fakes.walkme import FakeWalkMe
from tests.operator.helpers import API, NS, connection, eventually
from tests.operator.test_operator import apply_connections, finished_runs, jobs, ready
from walkme_dic.controllers.runtime import OPERATOR_USER_AGENT
from walkme_dic_dev.controlplane import ControlPlane

LEADER_ELECTION = f"{OPERATOR_USER_AGENT} leader-election"
Permission = tuple[str, str, str]


@pytest.fixture(scope="module")
async def release(control_plane: ControlPlane, helm_binary: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Release]:
    async with installed(control_plane, helm_binary, tmp_path_factory.mktemp("rbac")) as chart:
        yield chart


@dataclass
class Leadership:
    started_short: bool = False  # the leader took over while a grant was missing: its kopf may have given up


@pytest.fixture(scope="module")
def leadership() -> Leadership:
    return Leadership()


async def chart_grants(release: Release) -> dict[str, set[Permission]]:
    rendered = await release.rendered()
    return {kind: granted(rendered, kind) for kind in ("ClusterRole", "Role")}


async def test_the_operator_uses_exactly_what_the_chart_grants(
    release: Release, backends: dict, walkme: FakeWalkMe, moto_server: str,
) -> None:
    admin = release.admin
    await release.ready()
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(admin, backends)
    await admin.apply(inbound(runHistoryLimit=1))
    first = (await finished_runs(admin, "hr"))["status"]["runs"][0]["name"]
    await request_run(admin, "hr", "second")

    async def first_job_deleted() -> bool:
        obj = await admin.get(API, "Integration", NS, "hr")
        runs = obj["status"].get("runs") or []
        names = {job["metadata"]["name"] for job in await jobs(admin)}
        return bool(runs) and runs[0]["name"] != first and runs[0]["result"] != "Running" and first not in names

    await eventually(first_job_deleted, timeout=60)
    await release.delete_leader()
    await release.ready()

    events = release.audit.events(OPERATOR_USER)
    refused = sorted({(permission(e), e["requestURI"]) for e in events if e["responseStatus"]["code"] == 403})
    assert refused == [], "the chart's ServiceAccount was refused requests"
    used = {p for e in events if (p := permission(e)) is not None}
    grants = await chart_grants(release)
    everything = grants["ClusterRole"] | grants["Role"]
    assert sorted(used - everything) == [], "used beyond the chart's grants"
    assert sorted(everything - used) == [], "granted by the chart, never used by the operator"

    # Leader election: exactly its Role, on the one Lease in the release namespace, and nothing else uses Leases.
    electing = [e for e in events if e["userAgent"].startswith(LEADER_ELECTION)]
    assert {permission(e) for e in electing} == grants["Role"] == {
        ("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}
    assert {(e["objectRef"]["namespace"], e["objectRef"].get("name")) for e in electing} == {(RELEASE, LEASE)}
    assert not [e for e in events if e.get("objectRef", {}).get("resource") == "leases" and e not in electing]


# --- each grant removed in turn ------------------------------------------------------------------


@dataclass(frozen=True)
class Provoked:
    """What a case did to make the operator need the permission: the object the log line names, if any."""

    name: str = ""


Provoke = Callable[[Release, dict], Awaitable[Provoked]]


async def nothing(release: Release, backends: dict) -> Provoked:
    return Provoked()  # the operator needs it on its own: at start (lists, watches) or every renewal (Lease)


async def new_connection(release: Release, backends: dict) -> Provoked:
    name = f"probe-{uuid.uuid4().hex[:6]}"
    spec = next(m for m in backends["manifests"] if m["metadata"]["name"] == "lake")["spec"]
    await release.admin.apply(connection(name, spec))
    return Provoked(name)


async def new_integration(release: Release, backends: dict) -> Provoked:
    name = f"run-{uuid.uuid4().hex[:6]}"
    await release.admin.apply(inbound(name))
    return Provoked(name)


async def second_run(release: Release, backends: dict) -> Provoked:
    """An Integration keeping one run: its first Job goes when the second run is recorded."""
    name = f"history-{uuid.uuid4().hex[:6]}"
    await release.admin.apply(inbound(name, runHistoryLimit=1))
    await finished_runs(release.admin, name)
    await request_run(release.admin, name, "second")
    return Provoked(name)


async def lease_deleted(release: Release, backends: dict) -> Provoked:
    await release.admin.delete("coordination.k8s.io/v1", "Lease", RELEASE, LEASE)
    return Provoked()


@dataclass(frozen=True)
class Need:
    permission: Permission
    function: str  # what of the operator fails without it
    says: str  # what the operator's log then says, {name} being the provoked object's
    provoke: Provoke = nothing
    at_start: bool = False  # made when kopf starts: judged on the standby that takes over

    @property
    def id(self) -> str:
        group, resource, verb = self.permission
        return f"{group or 'core'}/{resource}:{verb}"


WATCHED = "failed; will retry: GET"  # kopf lists and watches again with back-off: "Request attempt #1/9 failed; …"
NEEDS = [
    Need(("integrations.walkme.io", "connections/status", "patch"), "Connection conditions (Ready, Probing)",
         "reconciling Connection team-a/{name} failed", new_connection),
    Need(("", "secrets", "get"), "reading a Connection's credentials to probe it (Ready=False, SecretForbidden)",
         "the operator may not read Secret", new_connection),
    Need(("", "events", "create"), "Events on Connections and Integrations", "could not post Event Probed for {name}",
         new_connection),
    Need(("batch", "jobs", "create"), "starting a run (its sync Job; Ready=False, JobCreateFailed)",
         "Integration team-a/{name}: the API server refused to create Job", new_integration),
    Need(("integrations.walkme.io", "integrations/status", "patch"), "Integration conditions and run history",
         "reconciling Integration team-a/{name} failed", new_integration),
    Need(("batch", "jobs", "delete"), "removing the Jobs of runs that left the history",
         "reconciling Integration team-a/{name} failed", second_run),
    Need(("coordination.k8s.io", "leases", "get"), "leader election: reading the Lease",
         "leader election: renewing Lease walkme-dic/walkme-dic-operator failed"),
    Need(("coordination.k8s.io", "leases", "update"), "leader election: renewing (and taking over) the Lease",
         "leader election: renewing Lease walkme-dic/walkme-dic-operator failed"),
    Need(("coordination.k8s.io", "leases", "create"), "leader election: creating the Lease where there is none",
         "leader election: renewing Lease walkme-dic/walkme-dic-operator failed", lease_deleted),
    *(need for group, resource, what in (
        ("integrations.walkme.io", "connections", "Connections (probed, their status written)"),
        ("integrations.walkme.io", "integrations", "Integrations (planned, run, their status written)"),
        ("batch", "jobs", "sync Jobs (a run followed to its end, adopted after a restart)"),
        ("", "pods", "sync Pods (a run's result, read from the termination message)"),
    ) for need in (
        Need((group, resource, "list"), f"indexing {what}: kopf runs no handler until every index is listed",
             WATCHED, at_start=True),
        Need((group, resource, "watch"), f"following {what}: changes after the start go unnoticed", WATCHED,
             at_start=True),
    )),
    *(Need(("apiextensions.k8s.io", "customresourcedefinitions", verb),
           "following the CRDs: kopf notices CRDs installed or changed after it started (it warns and goes on)",
           WATCHED, at_start=True) for verb in ("list", "watch")),
]


def without(rules: list[dict[str, Any]], removed: Permission) -> list[dict[str, Any]]:
    """The same grants but ``removed``, one rule per (group, resource)."""
    left: dict[tuple[str, str], list[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if (group, resource, verb) != removed:
                        left.setdefault((group, resource), []).append(verb)
    return [{"apiGroups": [group], "resources": [resource], "verbs": verbs}
            for (group, resource), verbs in left.items()]


def operator_logs(release: Release) -> dict[str, str]:
    """What each operator Pod on the node has printed so far."""
    names = {run.pod["metadata"]["name"] for run in release.node.pods.values()
             if run.pod["metadata"]["namespace"] == RELEASE}
    return {name: release.node.logs(name) for name in names}


async def test_every_grant_of_the_chart_has_a_case(release: Release) -> None:
    grants = await chart_grants(release)
    assert sorted(need.permission for need in NEEDS) == sorted(grants["ClusterRole"] | grants["Role"])


@pytest.mark.parametrize("need", NEEDS, ids=[need.id for need in NEEDS])
async def test_without_each_grant_the_function_that_needs_it_fails(
    release: Release, leadership: Leadership, backends: dict, walkme: FakeWalkMe, moto_server: str, need: Need,
) -> None:
    admin = release.admin
    if leadership.started_short and not need.at_start:
        await release.delete_leader()  # a leader that started with every grant
        leadership.started_short = False
    await release.ready()
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(admin, backends)
    for name in ("lake", "walkme"):
        await ready(admin, "Connection", name)
    (rendered,) = [o for o in await release.rendered()
                   if o["kind"] in ("ClusterRole", "Role") and need.permission in granted([o], o["kind"])]
    kind, namespace, name = rendered["kind"], rendered["metadata"].get("namespace", ""), rendered["metadata"]["name"]
    role = await admin.get("rbac.authorization.k8s.io/v1", kind, namespace, name)  # as installed
    since = {pod: len(text) for pod, text in operator_logs(release).items()}
    release.audit.mark()
    await admin.patch("rbac.authorization.k8s.io/v1", kind, namespace, name,
                      {"rules": without(role["rules"], need.permission)})
    try:
        if need.at_start:
            leadership.started_short = True
            await release.delete_leader()
        provoked = await need.provoke(release, backends)
        _, resource, verb = need.permission

        async def refused() -> set[Permission]:
            return {p for e in release.audit.events(OPERATOR_USER)
                    if e["responseStatus"]["code"] == 403 and (p := permission(e)) is not None}

        assert await eventually(refused, timeout=60) == {need.permission}, "only the removed grant was missing"
        says = need.says.format(name=provoked.name)
        refusal = f'cannot {verb} resource "{resource}"'

        async def logged() -> bool:
            text = "".join(log[since.get(pod, 0):] for pod, log in operator_logs(release).items())
            return says in text and refusal in text

        assert await eventually(logged, timeout=60), f"{need.function}: {says!r} and {refusal!r} not logged"
    finally:
        await admin.patch("rbac.authorization.k8s.io/v1", kind, namespace, name, {"rules": role["rules"]})
