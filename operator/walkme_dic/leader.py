"""One active operator among replicas: leader election on a coordination.k8s.io Lease, as client-go does it.

Why a Lease and not kopf peering: kopf peering is a presence protocol, not an election. Peers with
the same priority both keep running (kopf only logs a warning), and two replicas that start at the
same moment both run until they see each other's KopfPeering record — a window where a run can be
started twice. A Lease written with resourceVersion preconditions has exactly one holder at a time,
its semantics are the ones `kubectl get lease` shows, and a platform team knows them from every
controller-runtime operator.

How: a replica starts kopf only once it holds the Lease, renews it every ``retry`` seconds and stops
kopf (then exits, so the pod restarts as a standby) when it could not renew for ``renew_deadline``
seconds — before the Lease can expire for the others (``duration`` > ``renew_deadline``). A standby
takes the Lease over when its record has not changed for ``duration`` seconds *on the standby's own
clock* (client-go's rule: no trust in another node's clock). A replica that stops cleanly releases
the Lease, so a rolling update hands over at once; one that is killed is replaced after ``duration``.
The new leader's kopf lists everything and adopts the running Jobs (runs are named by slot and
created with create-or-adopt), so no run starts twice and the finished Job's status is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from walkme_dic.kube import LEASES, ApiError, KubeClient

log = logging.getLogger("walkme_dic.leader")
TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)  # try again at the next tick


@dataclass(frozen=True)
class ElectionTiming:
    duration: float = 15.0  # a standby takes over a Lease unchanged for this long
    renew_deadline: float = 10.0  # the leader gives up when it could not renew for this long
    retry: float = 2.0  # how often the leader renews and a standby looks

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError(f"leader election needs 0 < retry < renew deadline < lease duration, got {self}")


@dataclass(frozen=True)
class Observation:
    """The Lease as last read, and for how long (on our clock) its record has not changed."""

    lease: dict[str, Any] | None
    unchanged_for: float


def micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def holder(lease: dict[str, Any] | None) -> str:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def claim(seen: Observation, identity: str, timing: ElectionTiming, now: datetime) -> dict[str, Any] | None:
    """The Lease spec to write to hold it, or None while another holder's record is fresh.

    We renew our own Lease; we take a free one (no holder: released) or one whose record has not
    changed for a whole lease duration.
    """
    spec = dict((seen.lease or {}).get("spec") or {})
    current = holder(seen.lease)
    if current and current != identity and seen.unchanged_for < timing.duration:
        return None
    if current != identity:
        spec.update(holderIdentity=identity, acquireTime=micro_time(now),
                    leaseTransitions=int(spec.get("leaseTransitions") or 0) + (1 if seen.lease else 0))
    spec.update(leaseDurationSeconds=int(timing.duration), renewTime=micro_time(now))
    return spec


class LeaderElector:
    """Acquire, hold and release one Lease for ``identity``."""

    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str,
                 timing: ElectionTiming | None = None) -> None:
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.timing = timing or ElectionTiming()
        self._lease: dict[str, Any] | None = None
        self._seen_version: str | None = None
        self._seen_at = time.monotonic()

    async def _observe(self) -> Observation:
        try:
            self._lease = await self.client.get(LEASES, self.namespace, self.name)
        except ApiError as error:
            if error.status != 404:
                raise
            self._lease = None
        version = (self._lease or {}).get("metadata", {}).get("resourceVersion")
        if version != self._seen_version:
            self._seen_version, self._seen_at = version, time.monotonic()
        return Observation(self._lease, time.monotonic() - self._seen_at)

    async def _try_once(self) -> bool:
        """One look at the Lease and, when it is ours to take or renew, one conditional write."""
        seen = await self._observe()
        spec = claim(seen, self.identity, self.timing, datetime.now(UTC))
        if spec is None:
            return False
        try:
            if seen.lease is None:
                written = await self.client.create(LEASES, self.namespace, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec})
            else:
                written = await self.client.replace(LEASES, self.namespace, self.name, {**seen.lease, "spec": spec})
        except ApiError as error:
            if error.status in (409, 422):  # someone else wrote first: look again next time
                return False
            raise
        self._lease, self._seen_version, self._seen_at = written, written["metadata"]["resourceVersion"], \
            time.monotonic()
        return True

    async def acquire(self) -> None:
        """Return once this replica holds the Lease."""
        announced = False
        while True:
            try:
                if await self._try_once():
                    log.info("leader election: %s holds Lease %s/%s", self.identity, self.namespace, self.name)
                    return
            except TRANSIENT as error:
                log.warning("leader election: cannot read or write Lease %s/%s: %s", self.namespace, self.name, error)
            if not announced:
                log.info("leader election: standing by; Lease %s/%s is held by %s",
                         self.namespace, self.name, holder(self._lease) or "nobody")
                announced = True
            await asyncio.sleep(self.timing.retry)

    async def hold(self) -> None:
        """Renew every ``retry`` seconds; return when the Lease could not be renewed for ``renew_deadline``."""
        last_renewed = time.monotonic()
        while time.monotonic() - last_renewed < self.timing.renew_deadline:
            await asyncio.sleep(self.timing.retry)
            try:
                if await self._try_once():
                    last_renewed = time.monotonic()
                elif holder(self._lease) != self.identity:
                    break
            except TRANSIENT as error:
                log.warning("leader election: renewing Lease %s/%s failed: %s", self.namespace, self.name, error)
        log.error("leader election: %s lost Lease %s/%s (held by %s now); stopping",
                  self.identity, self.namespace, self.name, holder(self._lease) or "nobody")

    async def release(self) -> None:
        """Hand the Lease over at once (clean shutdown): clear the holder if it is still us."""
        try:
            seen = await self._observe()
            if holder(seen.lease) == self.identity and seen.lease is not None:
                spec = {**seen.lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                await self.client.replace(LEASES, self.namespace, self.name, {**seen.lease, "spec": spec})
                log.info("leader election: %s released Lease %s/%s", self.identity, self.namespace, self.name)
        except TRANSIENT as error:
            log.warning("leader election: releasing Lease %s/%s failed: %r", self.namespace, self.name, error)
