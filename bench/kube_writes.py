"""Status writes through the operator's aiohttp client against the `kubernetes` package's client.

`python -m bench.kube_writes [--writes 2000] [--concurrency 8] [--pairs 5]` starts the real control
plane on loopback (bench/cluster.py: etcd and kube-apiserver are processes of their own), creates
that many Integrations as the admin and merge-patches the status of each, ``concurrency`` at a time,
signed in as the operator's ServiceAccount (the chart's RBAC, a TokenRequest token, the API Priority
and Fairness level of any service account): once with `KubeClient` (aiohttp, in the event loop, as
the operator does) and once with `kubernetes.client.CustomObjectsApi` (urllib3, synchronous, so each
call runs in a worker thread as it would inside kopf's event loop), in ``pairs`` alternating pairs
(the order flips each pair, so that neither client always goes first). Both load the same
kubeconfig; every patch changes observedGeneration, so each one is a real write to etcd.
Prints, per client, the median and spread (min to max) of writes per second and of this process's CPU
seconds per 1,000 writes, and the median and spread of the per-pair ratio; records the case in
bench/results.json (the other cases kept).
This is the measurement behind keeping the operator's writes on aiohttp (see kube.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes.client

from bench.cluster import operator_identity, started_cluster
from bench.results import write_results
from walkme_dic.controllers.runtime import INTEGRATIONS
from walkme_dic.kube import ClusterAccess, KubeClient

API = "integrations.walkme.io/v1alpha1"
NS = "bench"
AIOHTTP, KUBERNETES = "aiohttp KubeClient", "kubernetes client in threads"


def cpu_seconds() -> float:
    """This process's CPU: the clients' cost (the apiserver and etcd run in processes of their own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(writes: int, concurrency: int, write: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await write(index)

    cpu, started = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(writes)))
    wall = time.perf_counter() - started
    return {"writes_per_s": writes / wall, "cpu_s_per_1000_writes": (cpu_seconds() - cpu) / writes * 1000}


def spread(values: list[float], digits: int) -> dict[str, float]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits)}


async def measure(writes: int, concurrency: int, pairs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-kube-writes-") as tmp:
        async with started_cluster(Path(tmp)) as cluster:
            identity = await operator_identity(cluster, Path(tmp))
            await cluster.ensure_namespace(NS)
            gate = asyncio.Semaphore(concurrency)

            async def create(index: int) -> None:
                async with gate:
                    await cluster.client.create(INTEGRATIONS, NS, {
                        "apiVersion": API, "kind": "Integration", "metadata": {"name": f"i-{index}", "namespace": NS},
                        "spec": {"direction": "Outbound", "connectionRef": {"name": "c"},
                                 "walkmeConnectionRef": {"name": "w"}, "source": {"walkme": {"dataset": "users"}},
                                 "destination": {"file": {"path": "x.csv"}},
                                 "mapping": {"key": {"source": "userId", "destination": "id"}}}})

            await asyncio.gather(*(create(i) for i in range(writes)))
            access = ClusterAccess.discover(kubeconfig=str(identity.kubeconfig))
            return await compare(access, writes, concurrency, pairs)


async def compare(access: ClusterAccess, writes: int, concurrency: int, pairs: int) -> dict[str, Any]:
    login = access.current()
    client = KubeClient(access)
    configuration = kubernetes.client.Configuration(host=login.server)
    configuration.ssl_ca_cert = login.ca_path
    configuration.api_key["BearerToken"], configuration.api_key_prefix["BearerToken"] = login.token, "Bearer"
    configuration.connection_pool_maxsize = concurrency
    custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
    threads = ThreadPoolExecutor(concurrency)
    loop = asyncio.get_running_loop()
    generation = 0  # each round writes a new observedGeneration: a real change, never a no-op patch

    async def via_aiohttp(index: int) -> None:
        await client.patch(INTEGRATIONS, NS, f"i-{index}", {"status": {"observedGeneration": generation}},
                           status=True)

    async def via_kubernetes(index: int) -> None:
        body = {"status": {"observedGeneration": generation}}
        await loop.run_in_executor(threads, lambda: custom.patch_namespaced_custom_object_status(
            INTEGRATIONS.group, INTEGRATIONS.version, NS, INTEGRATIONS.plural, f"i-{index}", body))

    clients = {AIOHTTP: via_aiohttp, KUBERNETES: via_kubernetes}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    try:
        for pair in range(pairs):
            for name in list(clients) if pair % 2 == 0 else list(reversed(clients)):
                generation += 1
                rounds[name].append(await timed(writes, concurrency, clients[name]))
    finally:
        threads.shutdown()
        await client.close()
    ratios = [a["writes_per_s"] / k["writes_per_s"] for a, k in zip(rounds[AIOHTTP], rounds[KUBERNETES],
                                                                      strict=True)]
    return {"case": f"{writes:,} status merge patches as the operator's ServiceAccount, {concurrency} at a time, "
                    f"{pairs} alternating pairs",
            **{name: {"writes_per_s": spread([r["writes_per_s"] for r in figures], 0),
                      "cpu_s_per_1000_writes": spread([r["cpu_s_per_1000_writes"] for r in figures], 2)}
               for name, figures in rounds.items()},
            "ratio_aiohttp_to_kubernetes_writes_per_s": spread(ratios, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kube_writes", description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="kopf's max_workers in the operator is 8.")
    parser.add_argument("--pairs", type=int, default=5, help="Alternating pairs of rounds, one per client each.")
    args = parser.parse_args()
    row = asyncio.run(measure(args.writes, args.concurrency, args.pairs))
    print(json.dumps(row, indent=2))
    write_results([row], " ".join(["python -m bench.kube_writes", *sys.argv[1:]]), update=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
