"""`walkme-dic operator`: settings, login, the resync loop (and the heap trim after each pass), and kopf's run loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import kopf
from aiohttp import web
from prometheus_client import start_http_server
from pydantic import ValidationError

from walkme_dic.controllers import connection, integration
from walkme_dic.controllers.backoff import backing_off
from walkme_dic.controllers.runtime import OPERATOR_USER_AGENT, OperatorConfig, Runtime
from walkme_dic.egress import POLICY_ENV, EgressPolicy
from walkme_dic.errors import validation_message
from walkme_dic.jobs.manifest import JobImage, proxy_settings
from walkme_dic.kube import ClusterAccess, CredentialsError, KubeClient
from walkme_dic.leader import ElectionTiming, LeaderElector
from walkme_dic.tenancy import TenancyPolicy, parse_label

log = logging.getLogger("walkme_dic.operator")
DEFAULT_IMAGE = "ghcr.io/walkme-dic/walkme-dic:0.1.0"


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one on every watch event (a deep copy of the whole body, status and run
    history included, then trimmed) for its change handlers (on.create/update/field) and daemons; this
    operator has none (on.event and indexes only), so nothing reads it. Profiled at 2,000 Integrations
    (BENCH_OPERATOR_PROFILE), building and clearing it took 65 of the operator's 298 CPU-s."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> None:
        return None

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Runtime, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our Events are explicit; kopf's handler logs are not Events
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    # kopf's worker of an object waits idle_timeout for its next event before it exits, holding the last event
    # (the whole body, managedFields included) meanwhile; with kopf's 5 s a roll-out kept a body alive for most
    # Integrations, Jobs and Pods at once, and the heap it grew to stays. 0.5 s: RSS after a roll-out of 500
    # Integrations ~193 -> ~172 MB (bench/operator_scale.py); a later event starts a new worker.
    settings.queueing.idle_timeout = 0.5
    if memo.config.metrics_port:
        memo.metrics_server, _ = start_http_server(memo.config.metrics_port, addr=memo.config.metrics_address)
    memo.resync_task = asyncio.create_task(resync_forever(memo))


@kopf.on.cleanup()
async def shutdown(memo: Runtime, **_: Any) -> None:
    if memo.resync_task is not None:
        memo.resync_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memo.resync_task
    for retry in list(memo.retries):  # reconciles waiting out a backoff (a refused Job, a failed reconcile)
        retry.cancel()
    await memo.client.close()
    memo.probes.close()
    if memo.metrics_server is not None:  # a restarted operator in the same process binds the port again
        memo.metrics_server.shutdown()
        memo.metrics_server.server_close()


@kopf.on.login()
def login(memo: Runtime, **_: Any) -> kopf.ConnectionInfo:
    """kopf logs in at start, when the last credentials reach ``expiration``, and after a 401.

    A call while the credentials we gave are not yet stale can only follow a 401: report it as a
    refusal, so that the same credentials loaded again are named once in the log.
    """
    access, given = memo.config.access, memo.kopf_login
    try:
        fresh = access.current() if given is None or given.stale() else access.refused(given)
    except CredentialsError as error:
        raise kopf.TemporaryError(str(error), delay=10) from None
    memo.kopf_login = fresh
    return kopf.ConnectionInfo(
        server=fresh.server, token=fresh.token, scheme=fresh.scheme if fresh.token else None,
        ca_path=fresh.ca_path, certificate_path=fresh.cert_path, private_key_path=fresh.key_path,
        insecure=fresh.insecure, default_namespace=fresh.default_namespace, expiration=fresh.renew_at,
    )


async def resync_forever(memo: Runtime) -> None:
    """Every resync period: re-plan each Integration (schedules) and re-check Connection probe intervals.

    Ours, not ``@kopf.timer``: kopf keeps a finalizer on every object a timer watches (its maintainer: timers
    need one, it cannot be turned off) and records each tick on the object. Measured with handlers that do
    nothing, 2,000 Integrations every 30 s on the real control plane (``python -m bench.kopf_timers``): the
    timer made 7,793 PATCHes while starting and 10,207 in 90 s of steady state (~1.7 per object per tick,
    113 writes/s) and used 7.8 CPU-s; one loop over the informer index, 0 writes and 0.02 CPU-s. The
    operator's promise of no writes in the steady state rules the timer out."""
    await memo.indexed.wait()
    while True:
        await asyncio.sleep(memo.config.resync_seconds)
        try:
            for namespace, name in list(memo.indexes["connection_index"].keys()):
                if not backing_off(memo, "Connection", namespace, name):
                    await connection.reconcile_connection(memo, namespace, name)
            await integration.reconcile_all(memo)
        except Exception:
            log.exception("resync pass failed")
        await asyncio.to_thread(release_free_heap)  # ctypes lets go of the GIL: the loop runs on meanwhile


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return None


MALLOC_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Give the heap's free pages back to the OS (glibc's malloc_trim(0); nothing where there is none).

    glibc keeps what Python frees in its heap, and returns only a free top of it; what a roll-out's event
    bodies, queues and answers took stays resident after they are gone. Measured at 500 Integrations
    (bench/operator_scale.py, mallinfo2 in the operator): 20-36 MB of the heap free after the roll-out,
    RSS 197 -> 177 MB after one trim. Called after each resync pass (every 30 s by default), in a thread: a
    trim walks the whole heap (~0.1-0.9 s on this machine's 2 cores, depending on the heap's size)."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


async def run_operator(
    config: OperatorConfig,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set (used by `walkme-dic operator`, tests and the demo)."""
    await kopf.operator(
        clusterwide=not config.namespaces,
        namespaces=list(config.namespaces),
        standalone=True,
        memo=Runtime.create(config),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=config.liveness,
        identity=operator_identity(),  # else kopf asks getpass, which fails for a uid with no passwd entry
    )


def operator_identity() -> str:
    """This process among the replicas: the pod's name (or the host's) and the pid."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


class OperatorThread:
    """The operator in its own thread and event loop.

    kopf cancels every task created after it started when it stops, so an operator that shares
    an event loop with other work (tests, the demo's servers) must live in a loop of its own.
    """

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="walkme-dic-operator", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(run_operator(self.config, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as error:  # reported by stop()
            self.error = error

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the operator did not become ready within {timeout}s: {self.error!r}")

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the operator did not stop within {timeout}s")


async def run_elected(config: OperatorConfig, election: Election) -> int:
    """Stand by until this replica holds the Lease, run the operator while it does; 1 when it was lost."""
    client = KubeClient(config.access, user_agent=f"{OPERATOR_USER_AGENT} leader-election")
    namespace = election.namespace or config.access.current().default_namespace or "default"
    elector = LeaderElector(client, namespace, election.lease, election.identity, election.timing)
    lost = asyncio.Event()
    try:
        async with standby_health(config.liveness):
            await elector.acquire()

        async def hold() -> None:
            await elector.hold()
            lost.set()

        holding = asyncio.create_task(hold())
        await run_operator(config, stop_flag=lost)
        holding.cancel()
        if not lost.is_set():
            await elector.release()
        return 1 if lost.is_set() else 0
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def standby_health(liveness: str | None) -> Any:
    """A standby is alive: answer the liveness URL until kopf serves it."""
    if not liveness:
        yield
        return
    url = urlsplit(liveness)
    app = web.Application()
    app.router.add_get(url.path or "/", lambda _: web.Response(text="standby"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, url.hostname, url.port or 80).start()
    try:
        yield
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class Election:
    lease: str
    identity: str
    namespace: str | None
    timing: ElectionTiming


def parse_args(argv: list[str]) -> tuple[OperatorConfig, Election | None]:
    parser = argparse.ArgumentParser(prog="walkme-dic operator", description="Run the walkme-dic operator.")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="Watch only this namespace (repeatable); default: all namespaces.")
    parser.add_argument("--kubeconfig", default=None,
                        help="Kubeconfig path(s), ':'-separated; default: $KUBECONFIG, in-cluster, ~/.kube/config.")
    parser.add_argument("--context", default=None, help="Kubeconfig context; default: its current-context.")
    parser.add_argument("--image", default=os.environ.get("WALKME_DIC_JOB_IMAGE", DEFAULT_IMAGE),
                        help="Image of sync Jobs (default: $WALKME_DIC_JOB_IMAGE).")
    parser.add_argument("--image-pull-policy", default="IfNotPresent")
    parser.add_argument("--resync", type=float, default=30.0, help="Seconds between resync passes.")
    parser.add_argument("--metrics-port", type=int, default=8000, help="Prometheus port; 0 disables.")
    parser.add_argument("--metrics-address", default="0.0.0.0",
                        help="Address the Prometheus endpoint listens on (the chart passes the pod IP).")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint.")
    parser.add_argument("--probe-timeout", type=float, default=30.0, help="Seconds a probe may take once started.")
    parser.add_argument("--probe-workers", type=int, default=16, help="Threads probes run in.")
    parser.add_argument("--probes-per-namespace", type=int, default=2,
                        help="Probes of one namespace running at a time (one tenant cannot take every thread).")
    parser.add_argument("--ambient-identity-namespace", action="append", default=[],
                        help="A namespace whose Connections may use ambient identity (repeatable; '*': all).")
    parser.add_argument("--ambient-identity-probe", action="store_true",
                        help="Probe ambient-identity Connections with the operator's own identity.")
    parser.add_argument("--secret-label", default=None, type=parse_label, metavar="KEY=VALUE",
                        help="KEY=VALUE: only Secrets with this label may be used by Connections and Integrations.")
    parser.add_argument("--egress-policy", type=egress_policy, metavar="JSON",
                        default=os.environ.get(POLICY_ENV, ""),
                        help=f"The admin's egress rules as JSON (default: ${POLICY_ENV}; unset: the safe defaults).")
    parser.add_argument("--max-runs", type=int, default=0, help="Runs going at once, operator-wide (0: no cap).")
    parser.add_argument("--max-runs-per-namespace", type=int, default=0,
                        help="Runs going at once in one namespace (0: no cap).")
    parser.add_argument("--log-format", choices=["json", "plain"], default="json")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--leader-elect", action="store_true",
                        help="Run only while holding a coordination.k8s.io Lease (for more than one replica).")
    parser.add_argument("--leader-elect-lease", default="walkme-dic-operator", help="The Lease's name.")
    parser.add_argument("--leader-elect-namespace", default=os.environ.get("POD_NAMESPACE"),
                        help="The Lease's namespace (default: $POD_NAMESPACE, else the credentials' namespace).")
    parser.add_argument("--leader-elect-duration", type=float, default=15.0,
                        help="Seconds a standby waits on an unchanged Lease before taking it over.")
    args = parser.parse_args(argv)
    kopf.configure(verbose=args.verbose,
                   log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN)
    duration = args.leader_elect_duration
    election = Election(
        lease=args.leader_elect_lease, namespace=args.leader_elect_namespace,
        identity=operator_identity(),
        timing=ElectionTiming(duration=duration, renew_deadline=duration * 2 / 3, retry=duration * 2 / 15),
    ) if args.leader_elect else None
    return OperatorConfig(
        access=ClusterAccess.discover(args.kubeconfig, args.context),
        image=job_image(args.image, args.image_pull_policy, os.environ, args.egress_policy),
        egress=args.egress_policy,
        namespaces=tuple(args.namespace),
        resync_seconds=args.resync,
        metrics_port=args.metrics_port or None,
        metrics_address=args.metrics_address,
        liveness=args.liveness or None,
        probe_timeout_seconds=args.probe_timeout,
        probe_workers=args.probe_workers,
        probes_per_namespace=args.probes_per_namespace,
        max_runs=args.max_runs or None,
        max_runs_per_namespace=args.max_runs_per_namespace or None,
        tenancy=TenancyPolicy(
            ambient_namespaces=frozenset(args.ambient_identity_namespace),
            ambient_probe=args.ambient_identity_probe,
            secret_label=args.secret_label,
        ),
    ), election


def egress_policy(text: str) -> EgressPolicy:
    """--egress-policy: the rules as JSON; argparse reports a ValueError as a bad value of the flag."""
    try:
        return EgressPolicy.model_validate_json(text) if text.strip() else EgressPolicy()
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"not valid egress rules: {validation_message(error)}") from None


def job_image(image: str, pull_policy: str, environ: Mapping[str, str], egress: EgressPolicy) -> JobImage:
    """What the sync Jobs get: the image and the proxy settings of the operator's ``environ``, but those with
    credentials in them (a warning names them, never their values)."""
    proxy = proxy_settings(environ)
    if proxy.withheld:
        log.warning("proxy settings with credentials in them are not passed on to sync Jobs (a Job's spec is "
                    "readable by whoever may read Jobs): %s", ", ".join(proxy.withheld))
    return JobImage(image, pull_policy, proxy.passed, egress)


def main(argv: list[str]) -> int:
    config, election = parse_args(argv)
    if election is not None:
        return asyncio.run(run_elected(config, election))
    asyncio.run(run_operator(config))
    return 0


__all__ = ["connection", "integration", "main", "run_operator"]
