"""Two `walkme-dic operator --leader-elect` processes: one runs, one stands by, the standby takes over.

The replicas are real processes against the dev cluster (the Lease is a coordination.k8s.io/v1
object there); the active one is SIGKILLed in the middle of a run, as a node loss would.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from tests.fixtures.servers import free_port
from tests.operator.helpers import LEASE_NS, Replicas, eventually, integration, plan_sync
from tests.operator.test_operator import apply_connections, finished_runs, jobs
from walkme_dic_dev.cluster import Cluster


async def lease_holder(cluster: Cluster) -> str:
    try:
        lease = await cluster.get("coordination.k8s.io/v1", "Lease", LEASE_NS, "walkme-dic-operator")
    except Exception as error:
        if getattr(error, "status", None) == 404:
            return ""
        raise
    return lease["spec"].get("holderIdentity") or ""


def pid_of(holder: str) -> int:
    return int(holder.rsplit("_", 1)[1])


async def test_standby_takes_over_a_killed_leader_mid_run(
    cluster: Cluster, node: object, backends: dict, sync_plans: Path, replicas: Replicas,
) -> None:
    first = replicas.start()
    await eventually(lambda: held_by(cluster, first.pid))
    second = replicas.start()
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", sleep=5)
    await cluster.apply(integration("users"))
    await eventually(lambda: jobs(cluster))
    assert pid_of(await lease_holder(cluster)) == first.pid  # the standby did not take over while it lived

    first.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.wait, 10)
    killed_at = time.monotonic()
    await eventually(lambda: held_by(cluster, second.pid), timeout=60)
    handover = time.monotonic() - killed_at
    obj = await finished_runs(cluster, "users")
    print(f"hand-over: the standby held the Lease {handover:.1f}s after the leader was killed; "
          f"run status written {time.monotonic() - killed_at:.1f}s after")
    assert handover < 60
    assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded"]  # the status write was not lost
    await asyncio.sleep(2)
    assert len(await jobs(cluster)) == 1  # and the run was not started again


async def test_clean_shutdown_releases_the_lease_at_once(
    cluster: Cluster, node: object, replicas: Replicas,
) -> None:
    first = replicas.start()
    await eventually(lambda: held_by(cluster, first.pid))
    second = replicas.start()
    await asyncio.sleep(1)
    first.terminate()
    stopped_at = time.monotonic()
    assert await asyncio.to_thread(first.wait, 30) == 0
    await eventually(lambda: held_by(cluster, second.pid), timeout=15)
    assert time.monotonic() - stopped_at < 10  # not the 15 s a killed leader costs


async def held_by(cluster: Cluster, pid: int) -> bool:
    holder = await lease_holder(cluster)
    return bool(holder) and pid_of(holder) == pid


async def test_standby_answers_its_liveness_probe(cluster: Cluster, node: object, replicas: Replicas) -> None:
    """A standby is alive (the probe must not restart it), and says it stands by."""
    first = replicas.start()
    await eventually(lambda: held_by(cluster, first.pid))
    url = f"http://127.0.0.1:{free_port()}/healthz"
    replicas.start(liveness=url)

    async def probe() -> str | None:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                return await response.text() if response.status == 200 else None
        except aiohttp.ClientConnectionError:
            return None

    assert await eventually(probe) == "standby"


async def test_a_leader_that_loses_its_lease_stops(cluster: Cluster, node: object, replicas: Replicas) -> None:
    """Someone else holds the Lease now (a partition healed late): the old leader stops kopf and exits 1."""
    first = replicas.start()
    await eventually(lambda: held_by(cluster, first.pid))
    await cluster.patch("coordination.k8s.io/v1", "Lease", LEASE_NS, "walkme-dic-operator",
                        {"spec": {"holderIdentity": "another-pod_1"}})
    assert await asyncio.to_thread(first.wait, 30) == 1
