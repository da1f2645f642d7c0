"""What the handlers share: configuration, the API client, per-object locks, the informer indexes."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIServer

import kopf

from walkme_dic.controllers.common import plain
from walkme_dic.controllers.probes import ProbePool
from walkme_dic.egress import EgressPolicy
from walkme_dic.jobs.manifest import JobImage
from walkme_dic.kube import ClusterAccess, KubeClient, Login, Resource
from walkme_dic.planning.job_refusals import JobRefusal
from walkme_dic.tenancy import TenancyPolicy

CONNECTIONS = Resource("integrations.walkme.io", "v1alpha1", "connections")
INTEGRATIONS = Resource("integrations.walkme.io", "v1alpha1", "integrations")
OPERATOR_USER_AGENT = "walkme-dic-operator"
INDEX_NAMES = ("connection_index", "destination_index", "integration_index", "job_index", "pod_index",
               "run_owner_index", "active_run_index", "store_index", "connection_users_index")


@dataclass(frozen=True)
class OperatorConfig:
    access: ClusterAccess
    image: JobImage
    namespaces: tuple[str, ...] = ()
    resync_seconds: float = 30.0
    probe_timeout_seconds: float = 30.0
    probe_workers: int = 16
    probes_per_namespace: int = 2
    tenancy: TenancyPolicy = field(default_factory=TenancyPolicy)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    max_runs: int | None = None  # runs going at once, operator-wide (None: no cap)
    max_runs_per_namespace: int | None = None

    @property
    def capped(self) -> bool:
        return self.max_runs is not None or self.max_runs_per_namespace is not None
    metrics_port: int | None = 8000
    metrics_address: str = "0.0.0.0"  # in a Pod the Service reaches it; tests pass 127.0.0.1
    liveness: str | None = None


@dataclass
class Runtime:
    """kopf's memo: one per operator process."""

    config: OperatorConfig
    client: KubeClient
    probes: ProbePool
    locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    indexes: dict[str, kopf.Index[Any, Any]] = field(default_factory=dict)
    written: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    indexed: asyncio.Event = field(default_factory=asyncio.Event)
    resync_task: asyncio.Task[None] | None = None
    reprobe: set[tuple[str, str]] = field(default_factory=set)  # Connections a failed run asks to be probed now
    launched: dict[tuple[str, str], float] = field(default_factory=dict)  # Jobs created, not yet seen in the index
    refusals: dict[tuple[str, str], JobRefusal] = field(default_factory=dict)  # Jobs the API refused, by Integration
    failures: dict[tuple[str, str, str], JobRefusal] = field(default_factory=dict)  # failed reconciles, by object
    retries: set[asyncio.Task[None]] = field(default_factory=set)  # reconciles scheduled for after a backoff's wait
    run_gate: asyncio.Lock = field(default_factory=asyncio.Lock)  # with run caps: one start decision at a time
    kopf_login: Login | None = None  # the credentials last handed to kopf
    metrics_server: WSGIServer | None = None

    def __copy__(self) -> Runtime:
        """Itself: kopf hands each object it watches ``copy.copy(memo)`` as that object's memo, and the Runtime is
        one per process. A copy per object was 280 bytes for each Integration, Job and Pod kopf has seen (1.7 MB
        at 2,000 Integrations; tracemalloc), and an attribute a handler rebound on its copy (``launched``, in
        run_capacity) went unseen by the others."""
        return self

    @classmethod
    def create(cls, config: OperatorConfig) -> Runtime:
        return cls(config=config, client=KubeClient(config.access, user_agent=OPERATOR_USER_AGENT),
                   probes=ProbePool(config.probe_workers, config.probes_per_namespace))

    def bind_indexes(self, handler_kwargs: dict[str, Any]) -> None:
        """kopf hands indexes to handlers only; keep them for the resync loop."""
        if not self.indexed.is_set():
            self.indexes.update({n: handler_kwargs[n] for n in INDEX_NAMES if n in handler_kwargs})
            if len(self.indexes) == len(INDEX_NAMES):
                self.indexed.set()

    def lookup(self, index: str, key: Any) -> list[Any]:
        store = self.indexes[index].get(key)
        return list(store) if store is not None else []

    def latest(self, kind: str, index: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the watch last showed it (kept :func:`~walkme_dic.controllers.common.packed` in
        ``index``), or our own newer write of it (``freshest``); None when the index has no such object."""
        found = self.lookup(index, (namespace, name))
        return self.freshest(kind, json.loads(found[0])) if found else None

    def remember(self, kind: str, written: dict[str, Any]) -> None:
        """The API's answer to our write of an object, until the watch delivers that version (``freshest``)."""
        meta = written["metadata"]
        self.written[(kind, meta["namespace"], meta["name"])] = plain(written)

    def freshest(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body, unless our own last write is newer than what the watch has delivered yet.

        Our copy goes once the watch has delivered that version or a newer one (or the object is another one
        of that name): kept for good, it was a second copy of every Integration, 4.5 MB at 500 Integrations
        after their run (the operator's structures sized in the process, bench/operator_scale.py)."""
        meta = body["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        ours = self.written.get(key)
        if ours is None:
            return body
        if ours["metadata"].get("uid") == meta.get("uid") and _rv(ours) > _rv(body):
            return ours
        del self.written[key]
        return body

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The object is deleted: drop our copy of its last write."""
        self.written.pop((kind, namespace, name), None)


def _rv(body: dict[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0
