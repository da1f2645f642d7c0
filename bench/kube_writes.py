"""Status writes through the operator's aiohttp client against the `kubernetes` package's client.

`python -m bench.kube_writes [--writes 2000] [--concurrency 8]` starts the dev cluster on loopback
in a process of its own, creates that many Integrations and merge-patches the status of each, ``concurrency`` at a time,
three alternating rounds per client (the best one is reported):
once with `KubeClient` (aiohttp, in the event loop, as the operator does) and once with
`kubernetes.client.CustomObjectsApi` (urllib3, synchronous, so each call runs in a worker thread as
it would inside kopf's event loop). Both use the same loaded credentials. Prints writes per second
and the client process's CPU seconds per 1,000 writes.
This is the measurement behind keeping the operator's writes on aiohttp (see kube.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes.client

from tests.fixtures.servers import free_port
from walkme_dic.devcluster.auth import DEV_TOKEN
from walkme_dic_dev.cluster import Cluster
from walkme_dic.kube import ClusterAccess, KubeClient, Login, Resource

API = "integrations.walkme.io/v1alpha1"
NS = "bench"


def cpu_seconds() -> float:
    """This process's CPU: the clients' cost (the dev API runs in its own process)."""
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
    cpu_per_1000 = (cpu_seconds() - cpu) / writes * 1000
    return {"writes_per_s": round(writes / wall), "cpu_s_per_1000_writes": round(cpu_per_1000, 2)}


async def serve(port: int) -> None:
    """The dev API in this process until stdin closes (its own process: no GIL or loop shared with the clients)."""
    async with Cluster(port=port) as cluster:
        print(cluster.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def measure(writes: int, concurrency: int) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, "-m", "bench.kube_writes", "--serve", str(free_port())],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    login = Login(server=url, method="dev cluster token", token=DEV_TOKEN)
    client = KubeClient(ClusterAccess.fixed(login))
    integrations = Resource("integrations.walkme.io", "v1alpha1", "integrations")
    try:
        for index in range(writes):
            await client.create(integrations, NS, {
                "apiVersion": API, "kind": "Integration", "metadata": {"name": f"i-{index}", "namespace": NS},
                "spec": {"direction": "Outbound", "connectionRef": {"name": "c"}, "walkmeConnectionRef": {"name": "w"},
                         "source": {"walkme": {"dataset": "users"}}, "destination": {"file": {"path": "x.csv"}},
                         "mapping": {"key": {"source": "userId", "destination": "id"}}}})

        async def via_aiohttp(index: int) -> None:
            await client.patch(integrations, NS, f"i-{index}", {"status": {"observedGeneration": 1, "n": "a"}},
                               status=True)

        configuration = kubernetes.client.Configuration(host=login.server)
        configuration.api_key["BearerToken"], configuration.api_key_prefix["BearerToken"] = login.token, "Bearer"
        configuration.connection_pool_maxsize = concurrency
        custom = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
        threads = ThreadPoolExecutor(concurrency)
        loop = asyncio.get_running_loop()

        async def via_kubernetes(index: int) -> None:
            await loop.run_in_executor(threads, lambda: custom.patch_namespaced_custom_object_status(
                "integrations.walkme.io", "v1alpha1", NS, "integrations", f"i-{index}",
                {"status": {"observedGeneration": 1, "n": "k"}}))

        rounds: dict[str, list[dict[str, float]]] = {"aiohttp KubeClient": [], "kubernetes client in threads": []}
        for _ in range(3):  # alternating, best of three: a busy machine slows one round, not one client
            rounds["aiohttp KubeClient"].append(await timed(writes, concurrency, via_aiohttp))
            rounds["kubernetes client in threads"].append(await timed(writes, concurrency, via_kubernetes))
        threads.shutdown()
        return {"case": f"{writes:,} status merge patches, {concurrency} at a time, best of 3",
                **{name: max(figures, key=lambda f: f["writes_per_s"]) for name, figures in rounds.items()}}
    finally:
        await client.close()
        server.stdin.close()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kube_writes", description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="kopf's max_workers in the operator is 8.")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    print(json.dumps(asyncio.run(measure(args.writes, args.concurrency)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
