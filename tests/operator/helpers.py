"""Helpers for operator tests: run/stop the operator in-process, build manifests, wait for state."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from walkme_dic.controllers.run import OperatorThread
from walkme_dic.controllers.runtime import OperatorConfig
from walkme_dic.jobs.manifest import JobImage
from walkme_dic.kube import ClusterAccess
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.egress import LOOPBACK

API = "integrations.walkme.io/v1alpha1"
NS = "team-a"
LEASE_NS = "walkme-dic"
# the node agent runs this repository's images
JOB_IMAGE = JobImage("ghcr.io/walkme-dic/walkme-dic:test", egress=LOOPBACK)


class OperatorHandle:
    """The real operator (kopf + our handlers) in its own thread; stop() and start() again to restart it."""

    def __init__(self, cluster: Cluster, resync_seconds: float = 0.5, metrics_port: int | None = None,
                 access: ClusterAccess | None = None) -> None:
        self.cluster = cluster
        self.config = OperatorConfig(access=access or cluster.access, image=JOB_IMAGE,
                                     resync_seconds=resync_seconds, metrics_port=metrics_port,
                                     metrics_address="127.0.0.1", probe_timeout_seconds=10,
                                     egress=LOOPBACK)
        self._thread: OperatorThread | None = None

    async def start(self) -> None:
        self._thread = OperatorThread(self.config)
        await asyncio.to_thread(self._thread.start)

    async def stop(self) -> None:
        assert self._thread is not None
        await asyncio.to_thread(self._thread.stop)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


class Replicas:
    """Operator processes started with leader election, each with its log file."""

    def __init__(self, kubeconfig: Path, logs: Path) -> None:
        self.kubeconfig, self.logs = kubeconfig, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, liveness: str = "") -> subprocess.Popen[bytes]:
        log = (self.logs / f"replica-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "walkme_dic", "operator", "--kubeconfig", str(self.kubeconfig),
             "--leader-elect", "--leader-elect-namespace", LEASE_NS, "--metrics-port", "0", "--liveness", liveness,
             "--resync", "1", "--log-format", "plain"],
            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ})
        log.close()
        self.processes.append(process)
        return process

    async def stop_all(self) -> None:
        """SIGTERM each; wait off the event loop, which serves the dev API they release the Lease through."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                await asyncio.to_thread(process.wait, 30)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until ``check`` returns a truthy value; fail with the last value seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return cond
    return {}


def secret(name: str, data: dict[str, str], namespace: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "stringData": data}


def connection(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Connection", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def integration(name: str, namespace: str = NS, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "direction": "Inbound",
        "connectionRef": {"name": "lake"},
        "walkmeConnectionRef": {"name": "walkme"},
        "source": {"file": {"path": "users.csv"}},
        "destination": {"walkme": {"integrationTokenSecretRef": {"name": "walkme-token", "key": "token"},
                                   "userIdProperty": "uuid"}},
        "mapping": {"key": {"source": "id", "destination": "uuid"}, "activeField": "active"},
    }
    spec.update(overrides)
    return {"apiVersion": API, "kind": "Integration", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def plan_sync(directory: Path, integration_name: str, **plan: Any) -> None:
    """Tell the stand-in sync how the next runs of ``integration_name`` behave."""
    (directory / f"{integration_name}.json").write_text(json.dumps(plan))


def kubectl_runner(binary: Path, kubeconfig: Path) -> Callable[..., Awaitable[str]]:
    """The real kubectl against the dev cluster: returns stdout, fails the test on an error or an ambiguous name."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    async def kubectl(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(str(binary), *args, env=env,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert b"could also match" not in err, err.decode()
        return out.decode()

    return kubectl


def without_rules(node: Any, drop: Callable[[dict[str, Any]], bool]) -> Any:
    """A CRD (or a part of one) without the x-kubernetes-validations rules ``drop`` picks."""
    if isinstance(node, dict):
        rules = [r for r in node.get("x-kubernetes-validations", []) if not drop(r)]
        return {k: without_rules(v, drop) for k, v in {**node, "x-kubernetes-validations": rules}.items()
                if k != "x-kubernetes-validations" or rules}
    return [without_rules(v, drop) for v in node] if isinstance(node, list) else node
