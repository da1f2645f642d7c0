"""Operator at scale: N Integrations over M Connections on the real control plane, the operator as a real process.

bench/cluster.py starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler; the
operator runs as its chart's ServiceAccount under the chart's ClusterRole. Every Integration runs
once when it is created: the operator creates its Job, the controller manager's Job controller its
Pod, the scheduler binds it, and the node agent (walkme_dic_dev.node_agent, in this process) runs it
in its sandbox — with a shell stand-in for `walkme-dic sync` that writes a successful result, so
that 2,000 runs do not mean 2,000 Python start-ups.

Measured: the seconds until every Integration's first run has finished and it is Ready (those that
are not Ready after their run are counted by reason, and then there is no "all Ready" figure), and on
the way until every run had been started, which is the operator's part alone; the requests the
operator makes per Integration in ``settle`` seconds once everything is settled (target: none, no
writes); the operator process's resident memory; and the apiserver's own request counters
(bench/cluster.py) for the roll-out and for the steady window, by verb and resource and, from the
audit log, by client.
BENCH_OPERATOR_LOG=path keeps the operator's log; BENCH_OPERATOR_PROFILE=path runs it under cProfile
(the profile is written when it stops); BENCH_WORKDIR=folder keeps the control plane's logs and
audit log (and the node agent's folders) there instead of in a temporary folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cluster import OPERATOR_CLIENT, mark, operator_identity, requests_between, started_cluster
from tests.fixtures.cluster import start_node
from walkme_dic import reasons
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.conditions import find_condition
from walkme_dic.controllers.runtime import CONNECTIONS, INTEGRATIONS
from walkme_dic.egress import POLICY_ENV
from walkme_dic.kube import SECRETS, ApiError, KubeClient, Resource
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.egress import LOOPBACK_JSON
from walkme_dic_dev.fake_walkme import FakeWalkMe

API = "integrations.walkme.io/v1alpha1"
NAMESPACE = "scale"
CREATE_CONCURRENCY = 8
# BENCH_OPERATOR_PYTHONPATH=<an older checkout's operator/ dir> measures that version's operator ("before").
OPERATOR_CODE = {"PYTHONPATH": os.environ["BENCH_OPERATOR_PYTHONPATH"]} \
    if os.environ.get("BENCH_OPERATOR_PYTHONPATH") else {}
RESULT = json.dumps({"result": "Succeeded", "reason": "Synced", "rowsRead": 1, "rowsWritten": 1})


def stand_in_sync(argv: list[str]) -> list[str]:
    """`walkme-dic sync … --result PATH` becomes a shell that writes a successful result there."""
    if argv[:2] != ["walkme-dic", "sync"]:
        return argv
    result_path = argv[argv.index("--result") + 1]
    return ["/bin/sh", "-c", 'printf "%s" "$0" > "$1"', RESULT, result_path]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(integrations: int, connections: int, settle_seconds: float,
                  controller_manager_qps: int | None = None) -> dict[str, Any]:
    walkme = FakeWalkMe(clients={"c": "s"}, integration_tokens={"t": "uuid"})
    walkme.start()
    try:
        with contextlib.ExitStack() as stack:
            kept = os.environ.get("BENCH_WORKDIR")  # keeps the components' logs and the audit log there
            workdir = Path(kept) if kept else Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bench-operator-")))
            async with started_cluster(workdir, controller_manager_qps) as cluster:
                row = await measure_on(cluster, workdir, walkme.url, integrations, connections, settle_seconds)
                return {**row, "controller_manager_qps": controller_manager_qps or "default (20)"}
    finally:
        walkme.stop()


async def measure_on(cluster: Cluster, workdir: Path, walkme_url: str, integrations: int, connections: int,
                     settle_seconds: float) -> dict[str, Any]:
    identity = await operator_identity(cluster, workdir)
    await cluster.ensure_namespace(NAMESPACE)
    node = await start_node(cluster.control_plane, workdir / "node", stand_in_sync)
    log = Path(os.environ.get("BENCH_OPERATOR_LOG", os.devnull)).open("w")  # noqa: SIM115 - closed below
    profile = os.environ.get("BENCH_OPERATOR_PROFILE")
    operator = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
         "-m", "walkme_dic", "operator", "--kubeconfig", str(identity.kubeconfig),
         "--metrics-port", "0", "--liveness", "", "--resync", "30", "--log-format", "plain"],
        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, POLICY_ENV: LOOPBACK_JSON, **OPERATOR_CODE})
    try:
        before = await mark(cluster)
        idle_cpu = cpu_seconds(operator.pid)
        started = time.monotonic()
        await create_objects(cluster, walkme_url, integrations, connections)
        created = time.monotonic()
        rollout, finished = await wait_for_runs(cluster.client, integrations)
        rollout_cpu = cpu_seconds(operator.pid) - idle_cpu
        settled = await mark(cluster)
        await asyncio.sleep(settle_seconds)
        after = await mark(cluster)
        if operator.poll() is not None:
            raise SystemExit(f"the operator exited with {operator.returncode} (BENCH_OPERATOR_LOG=path keeps its log)")
        during, window = await requests_between(cluster, identity, [(before, settled), (settled, after)])
        if not during.operator():
            raise SystemExit(f"the audit log shows no request of the operator's ServiceAccount: is "
                             f"{cluster.control_plane.audit_log} written?")
        in_window = sum(window.operator().values())
        not_ready = rollout.not_ready()
        return {
            "case": f"operator: {integrations:,} Integrations over {connections} Connections",
            "seconds_until_all_ready": None if not_ready else round(finished - started, 1),
            "seconds_until_all_runs_finished": round(finished - started, 1),
            "seconds_creating_objects": round(created - started, 1),
            "seconds_until_all_runs_started": round(rollout.all_started - started, 1),
            "not_ready_after_their_run": not_ready,
            "settle_window_s": settle_seconds,
            "requests_per_integration_in_window": round(in_window / integrations, 3),
            "writes_in_window": window.operator_writes(),
            "operator_requests_per_integration_rollout": round(sum(during.operator().values()) / integrations, 2),
            "operator_cpu_s_rollout": round(rollout_cpu, 1),
            "operator_cpu_ms_per_integration": round(1000 * rollout_cpu / integrations, 1),
            "operator_rss_mb": round(rss_mb(operator.pid, "VmRSS"), 1),
            "operator_peak_rss_mb": round(rss_mb(operator.pid, "VmHWM"), 1),
            "apiserver_requests_rollout": during.summary(),
            "apiserver_requests_in_window": window.summary(),
            "control_plane": cluster.control_plane.version()["gitVersion"],
        }
    finally:
        operator.terminate()
        await asyncio.to_thread(operator.wait, 30)
        log.close()
        await node.stop()


async def create_objects(cluster: Cluster, walkme_url: str, integrations: int, connections: int) -> None:
    """The Secrets and the WalkMe Connections, the Integrations, then the S3 Connection they all write to."""
    client = cluster.client
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(resource: Resource, body: dict[str, Any]) -> None:
        async with gate:
            await client.create(resource, NAMESPACE, {**body, "metadata": {**body["metadata"],
                                                                           "namespace": NAMESPACE}})

    for name, data in (("w", {"clientId": "c", "clientSecret": "s"}), ("t", {"token": "t"}),
                       ("a", {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})):
        await create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                               "stringData": data})
    await asyncio.gather(*(create(CONNECTIONS, {
        "apiVersion": API, "kind": "Connection", "metadata": {"name": f"walkme-{index}"},
        "spec": {"walkme": {"apiUrl": walkme_url, "auth": {"secretRef": {"name": "w"}}}, "probeInterval": "1h"}})
        for index in range(connections)))
    await asyncio.gather(*(create(INTEGRATIONS, {
        "apiVersion": API, "kind": "Integration", "metadata": {"name": f"export-{index}"},
        "spec": {"direction": "Outbound", "connectionRef": {"name": "lake"},
                 "walkmeConnectionRef": {"name": f"walkme-{index % connections}"},
                 "source": {"walkme": {"dataset": "activityLog"}},  # needs no insightsExportUrl, which
                 # the baseline operator (BENCH_OPERATOR_PYTHONPATH=…/da7813e) predates
                 "destination": {"file": {"path": f"exports/export-{index}.csv"}},  # two on one file: a conflict
                 "mapping": {"key": {"source": "userId", "destination": "id"}}, "schedule": "0 3 * * *"}})
        for index in range(integrations)))
    await create(CONNECTIONS, {"apiVersion": API, "kind": "Connection", "metadata": {"name": "lake"},
                               "spec": {"s3": {"bucket": "scale-bucket", "region": "us-east-1",
                                               "endpointUrl": os.environ["BENCH_S3_URL"],
                                               "auth": {"secretRef": {"name": "a"}}}}})


class Rollout:
    """What the watch has shown of each Integration: its first run started, finished, and Ready after it."""

    def __init__(self, integrations: int) -> None:
        self.integrations = integrations
        self.started: set[str] = set()
        self.finished: dict[str, str] = {}  # name: its Ready reason after the run (and the run's, when not Ready)
        self.examples: dict[str, str] = {}  # one Ready message of each
        self.all_started = 0.0

    def see(self, body: dict[str, Any]) -> None:
        name, status = body["metadata"]["name"], IntegrationStatus.model_validate(body.get("status") or {})
        if status.runs:
            self.started.add(name)
            if not self.all_started and len(self.started) == self.integrations:
                self.all_started = time.monotonic()
        ready = find_condition(status.conditions, reasons.READY)
        last = status.last_result
        if last and not status.active_run:
            self.finished[name] = (ready.reason if ready.status == "True" else f"{ready.reason}: {last.reason}") \
                if ready else f"None: {last.reason}"
            self.examples.setdefault(self.finished[name], ready.message if ready else "")
        else:
            self.finished.pop(name, None)

    @property
    def done(self) -> bool:
        return len(self.finished) == self.integrations

    def not_ready(self) -> dict[str, dict[str, Any]]:
        """Why Integrations are not Ready after their run: {reasons: {"count": n, "example": a message}}."""
        counts = Counter(why for why in self.finished.values() if why != reasons.RUN_SUCCEEDED)
        return {why: {"count": n, "example": self.examples[why]} for why, n in counts.most_common()}


async def wait_for_runs(client: KubeClient, integrations: int, timeout: float = 1800) -> tuple[Rollout, float]:
    """The roll-out once every Integration's first run has finished, and when that was (from a watch)."""
    deadline = time.monotonic() + timeout
    rollout = Rollout(integrations)
    while time.monotonic() < deadline:
        listing = await client.request("GET", INTEGRATIONS.path(NAMESPACE))
        for body in listing["items"]:
            rollout.see(body)
        if rollout.done:
            return rollout, time.monotonic()
        try:
            async for _, body in client.watch(INTEGRATIONS, NAMESPACE, listing["metadata"]["resourceVersion"],
                                              timeout_seconds=60):
                rollout.see(body)
                if rollout.done:
                    return rollout, time.monotonic()
        except ApiError as error:
            if error.status != 410:  # an expired resourceVersion: list again
                raise
    raise SystemExit(f"{len(rollout.finished)} of {integrations} Integrations finished a run within {timeout:.0f}s")


def print_requests(title: str, requests: dict[str, Any]) -> None:
    """The apiserver's counters for one phase, as measure() records them."""
    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{key} {n:,}" for key, n in counts.items()) or "none"

    print(f"  apiserver requests, {title}: {requests['total']:,} (apiserver_request_total)")
    print(f"    by verb and resource: {listed(requests['by_verb_and_resource'])}")
    print(f"    by client (audit log): {listed(requests['by_client'])}")
    print(f"    {OPERATOR_CLIENT} by verb and resource: {listed(requests['operator_by_verb_and_resource'])}")
