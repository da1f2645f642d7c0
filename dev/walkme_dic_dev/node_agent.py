"""The node agent: a kubelet's duties for one Node, with local processes instead of containers.

Test and demo support, never shipped. It signs in as ``system:node:<name>`` (the Node authorizer and
NodeRestriction hold it to what a kubelet may do), registers a Ready Node with this machine's capacity,
renews its Lease in kube-node-lease, and runs the containers of every Pod the scheduler binds to it:

* the image: one whose repository is the chart's (``ghcr.io/walkme-dic/walkme-dic``) runs this
  checkout's `walkme-dic` — entrypoint and cmd are read from the Dockerfile, its USER is the default
  uid; any other image waits in ``ErrImagePull`` with a message saying why;
* command/args with ``$(VAR)`` expansion, env with ``value``/``valueFrom`` (Secret, ConfigMap,
  fieldRef) and ``envFrom``, the `kubernetes` Service's KUBERNETES_SERVICE_HOST/PORT pointing at the
  apiserver's real loopback address; nothing is inherited from the agent's own environment;
* volumes (volumes.py) at their mountPaths, uid/gid from securityContext, read-only root (sandbox.py);
* the termination message (terminationMessagePath, FallbackToLogsOnError), exit codes, restartPolicy
  with a kubelet's back-off, httpGet/tcpSocket readiness and liveness probes, init containers in order;
* deletion: SIGTERM to the container's process, SIGKILL to its process group after the grace period, then
  the final delete;
* Pod status as a kubelet writes it (phase, conditions, containerStatuses with image, imageID,
  containerID, state, lastState, restartCount; hostIP 127.0.0.1, podIP the Pod's own loopback
  address), by strategic merge patch;
* ``/containerLogs/{ns}/{pod}/{container}`` over TLS (follow, tailLines, limitBytes, previous), which
  the apiserver proxies for ``kubectl logs``; it asks the caller for a certificate of the cluster's CA.

Pods share this machine's network (no network namespaces, no kube-proxy), but each has an address of its
own: the first free 127.0.1.N (one whose declared TCP containerPorts can be bound, when one is) is its
status.podIP — what `fieldRef: status.podIP` gives and what httpGet/tcpSocket probes reach, as on a real
node — and is freed when the Pod's containers have ended. Containers that bind their pod IP do not
collide; two that bind 0.0.0.0 on one port still do.

Not done: exec/attach/port-forward, resource limits and eviction, exec probes, image pulls of any kind,
hostPath/PVC/CSI volumes, ephemeral containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from walkme_dic.kube import PODS, SECRETS, ApiError, ClusterAccess, KubeClient, Resource
from walkme_dic_dev import sandbox
from walkme_dic_dev.pki import Pair
from walkme_dic_dev.volumes import CONFIGMAPS, PodVolumes, VolumeError, field_value

log = logging.getLogger("walkme_dic_dev.node_agent")

NODES = Resource("", "v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
CHART_IMAGE = "ghcr.io/walkme-dic/walkme-dic"
DOCKERFILE = sandbox.REPO / "Dockerfile"
MESSAGE_LIMIT = 4096
FALLBACK_LOG_BYTES, FALLBACK_LOG_LINES = 2048, 80
BACKOFF_START, BACKOFF_CAP = 10.0, 300.0
REPORT_ATTEMPTS = 4
CONFIG_RETRY_START = 0.5  # CreateContainerConfigError: retried after 0.5 s, 1 s, … up to BACKOFF_START
LEASE_SECONDS = 40
HOST_IP = "127.0.0.1"
POD_ADDRESSES = tuple(f"127.0.1.{n}" for n in range(1, 255))
CommandResolver = Callable[[list[str]], list[str]]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(dockerfile: Path = DOCKERFILE) -> tuple[list[str], list[str], int]:
    """The chart image's ENTRYPOINT, CMD (exec form) and USER uid, read from the Dockerfile's last stage."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    uid = 0
    for line in dockerfile.read_text().splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "FROM":
            entrypoint, cmd, uid = [], [], 0
        elif word == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "USER":
            uid = int(rest.split(":")[0])
    return entrypoint, cmd, uid


def repository(image: str) -> str:
    """``ghcr.io/x/y:tag`` or ``…@sha256:…`` → ``ghcr.io/x/y``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes, unknown ones left as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def default_command(argv: list[str]) -> list[str]:
    """`walkme-dic …` is this checkout's, run by the interpreter the agent runs in."""
    return [sys.executable, "-m", "walkme_dic", *argv[1:]] if argv[:1] == ["walkme-dic"] else argv


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    init: bool
    log: Path
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None
    started_at: str | None = None
    ready: bool = False
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    container_id: str = ""
    identity: sandbox.Identity | None = None  # the uid, gid and groups it last ran as

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self, image_id: str) -> dict[str, Any]:
        running = "running" in self.state
        return {"name": self.name, "image": self.spec.get("image", ""), "imageID": image_id,
                "containerID": self.container_id, "ready": self.ready and running, "started": running,
                "restartCount": self.restarts, "state": self.state, "lastState": self.last_state}


@dataclass
class PodRun:
    pod: dict[str, Any]
    root: Path
    containers: dict[str, ContainerRun] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    termination: asyncio.Task[None] | None = None
    deleting: asyncio.Event = field(default_factory=asyncio.Event)
    volumes: PodVolumes | None = None
    folders: dict[str, Path] = field(default_factory=dict)
    phase: str = "Pending"
    reason: str | None = None
    message: str | None = None
    ip: str = ""  # status.podIP, from the node's POD_ADDRESSES while its containers run

    @property
    def key(self) -> tuple[str, str]:
        return self.pod["metadata"]["namespace"], self.pod["metadata"]["name"]


@dataclass
class NodeAgent:
    """``async with NodeAgent(kubeconfig, serving, apiserver_port) as node:`` runs this Node's Pods until exited."""

    kubeconfig: Path
    serving: Pair
    ca: Path
    apiserver_port: int
    name: str = "walkme-node"
    workdir: Path = field(default_factory=lambda: Path("/tmp") / f"walkme-node-{uuid.uuid4().hex[:8]}")
    command_resolver: CommandResolver = default_command
    extra_env: dict[str, str] = field(default_factory=dict)
    images: frozenset[str] = frozenset({CHART_IMAGE})
    shared: tuple[Path, ...] = ()  # host folders every container sees at their own path (test support)
    heartbeat_seconds: float = 10
    pods: dict[tuple[str, str], PodRun] = field(default_factory=dict)
    addresses: set[str] = field(default_factory=set)  # pod IPs in use

    def __post_init__(self) -> None:
        self.client = KubeClient(ClusterAccess.discover(kubeconfig=str(self.kubeconfig)), user_agent="walkme-node")
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.entrypoint, self.cmd, self.image_uid = image_config()

    async def __aenter__(self) -> NodeAgent:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._serve()
        await self._register()
        self._tasks = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._pods())]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        for run in list(self.pods.values()):
            await self._kill(run, grace=0)
        for task in [*self._tasks, *(r.task for r in self.pods.values() if r.task)]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        await self.client.close()

    def logs(self, pod: str) -> str:
        """What the containers of Pod ``pod`` (any namespace) printed, for a test's assertions."""
        return "".join(c.log.read_text(errors="replace") for run in self.pods.values()
                       if run.pod["metadata"]["name"] == pod for c in run.containers.values() if c.log.exists())

    # --- the Node and its Lease -------------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        cpus, memory = str(os.cpu_count() or 1), f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 1024}Ki"
        capacity = {"cpu": cpus, "memory": memory, "pods": "110", "ephemeral-storage": "50Gi"}
        stamp = now()
        conditions = [{"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}", "message": "",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                      for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "walkme-dic node agent is posting ready status",
                           "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
        return {"capacity": capacity, "allocatable": capacity, "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": self.name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "nodeInfo": {"kubeletVersion": "v0.0.0-walkme-node-agent", "operatingSystem": "linux",
                             "architecture": "amd64", "containerRuntimeVersion": "walkme-node-agent://1",
                             "kernelVersion": os.uname().release, "osImage": "local processes",
                             "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}}

    async def _register(self) -> None:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        try:
            await self.client.create(NODES, "", {"apiVersion": "v1", "kind": "Node",
                                                 "metadata": {"name": self.name, "labels": labels}})
        except ApiError as error:
            if error.status != 409:
                raise
        await self.client.patch(NODES, "", self.name, {"status": self._node_status()}, status=True)

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(ApiError, OSError, aiohttp.ClientError, TimeoutError):
                await self._renew_lease()
                await self.client.patch(NODES, "", self.name, {"status": self._node_status()}, status=True)
                for run in list(self.pods.values()):
                    if run.task and not run.task.done() and run.volumes is not None:
                        await run.volumes.refresh_tokens()
            await asyncio.sleep(self.heartbeat_seconds)

    async def _renew_lease(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": stamp}
        try:
            await self.client.patch(LEASES, "kube-node-lease", self.name, {"spec": spec})
        except ApiError as error:
            if error.status != 404:
                raise
            await self.client.create(LEASES, "kube-node-lease", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": "kube-node-lease"}, "spec": spec})

    # --- Pods bound to this Node ------------------------------------------------------------------

    async def _pods(self) -> None:
        selector = f"fieldSelector=spec.nodeName%3D{self.name}"
        while True:
            with contextlib.suppress(ApiError, OSError, aiohttp.ClientError, TimeoutError):
                listing = await self.client.request("GET", f"{PODS.path()}?{selector}")
                seen = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listing["items"]}
                for key in [k for k in self.pods if k not in seen]:
                    await self._gone(key)
                for pod in listing["items"]:
                    await self._observe("MODIFIED", pod)
                async for kind, pod in self.client.watch(PODS, None, listing["metadata"]["resourceVersion"],
                                                         query=selector):
                    await self._observe(kind, pod)
            await asyncio.sleep(0.5)

    async def _observe(self, kind: str, pod: dict[str, Any]) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        run = self.pods.get(key)
        if run is not None and run.pod["metadata"]["uid"] != pod["metadata"]["uid"]:
            await self._gone(key)  # a new Pod of the same name
            run = None
        if kind == "DELETED":
            await self._gone(key)
            return
        if run is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                if pod["metadata"].get("deletionTimestamp"):
                    await self._final_delete(pod)
                return
            run = PodRun(pod, self.workdir / pod["metadata"]["uid"])
            self.pods[key] = run
            run.task = asyncio.create_task(self._run_pod(run))
        run.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not run.deleting.is_set():
            run.deleting.set()
            run.termination = asyncio.create_task(self._terminate(run))

    async def _gone(self, key: tuple[str, str]) -> None:
        run = self.pods.pop(key, None)
        if run is not None:
            await self._kill(run, grace=0)
            if run.task:
                run.task.cancel()

    async def _terminate(self, run: PodRun) -> None:
        """A graceful delete: stop the containers within the grace period, report, then delete for good."""
        grace = run.pod["metadata"].get("deletionGracePeriodSeconds")
        await self._kill(run, grace=30 if grace is None else int(grace))
        if run.task:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(run.task, 5)
        if run.phase not in ("Succeeded", "Failed"):
            run.phase = "Failed"
        await self._report(run)
        await self._final_delete(run.pod)
        self.pods.pop(run.key, None)

    async def _final_delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            await self.client.request("DELETE", PODS.path(meta["namespace"], meta["name"]), {
                "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})

    @staticmethod
    async def _kill(run: PodRun, grace: float) -> None:
        processes = [c.process for c in run.containers.values() if c.process and c.process.returncode is None]
        for process in processes:
            if grace:
                _stop(process)
            else:
                _signal(process, signal.SIGKILL)
        if processes and grace:
            _, pending = await asyncio.wait([asyncio.create_task(p.wait()) for p in processes], timeout=grace)
            for process in processes:
                if process.returncode is None:
                    _signal(process, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=5)

    async def _run_pod(self, run: PodRun) -> None:
        spec = run.pod["spec"]
        for init in spec.get("initContainers") or []:
            run.containers[init["name"]] = ContainerRun(init, True, run.root / f"{init['name']}.log")
        for container in spec["containers"]:
            run.containers[container["name"]] = ContainerRun(container, False, run.root / f"{container['name']}.log")
        run.root.mkdir(parents=True, exist_ok=True)
        try:
            run.ip = self._allocate(run.pod)
            await self._prepare(run)
            for init in [c for c in run.containers.values() if c.init]:
                if await self._container(run, init) != 0:
                    run.phase = "Failed"
                    await self._report(run)
                    return
            run.phase = "Running"
            codes = await asyncio.gather(*(self._container(run, c) for c in run.containers.values() if not c.init))
            if not run.deleting.is_set():
                run.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
                await self._report(run)
        except _Waiting as waiting:
            await self._waiting(run, waiting)
        except Exception as error:  # a fault of the agent's own: said on the Pod, not lost with the task
            log.exception("running Pod %s/%s failed", *run.key)
            run.phase, run.reason, run.message = "Failed", "NodeAgentError", f"{type(error).__name__}: {error}"
            with contextlib.suppress(Exception):
                await self._report(run)
        finally:
            self.addresses.discard(run.ip)

    def _allocate(self, pod: dict[str, Any]) -> str:
        """A pod IP no running Pod has, preferring one on which the Pod's TCP containerPorts are free."""
        ports = [int(p["containerPort"]) for c in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
                 for p in c.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        unused = [address for address in POD_ADDRESSES if address not in self.addresses]
        if not unused:
            raise _Waiting("ContainerCreating", f"node {self.name} has no pod IP left ({len(POD_ADDRESSES)} in use)")
        address = next((a for a in unused if all(_bindable(a, port) for port in ports)), unused[0])
        self.addresses.add(address)
        return address

    async def _prepare(self, run: PodRun) -> None:
        """Volumes and identities, or the reason the Pod waits (as a kubelet would report it)."""
        for container in run.containers.values():
            image = container.spec.get("image", "")
            if repository(image) not in self.images:
                raise _Waiting("ErrImagePull", f"the walkme-dic node agent runs only {', '.join(sorted(self.images))} "
                               f"images (as this checkout's walkme-dic); {image!r} cannot be pulled here")
        uid, gid, groups = self._identity(run.pod["spec"], run.pod["spec"]["containers"][0])
        # Retried as a kubelet does, until the Pod is deleted: the Node authorizer may not have seen the
        # binding yet (403 on the Pod's own ConfigMaps and Secrets), or a missing Secret may be created.
        delay = CONFIG_RETRY_START
        while True:
            run.volumes = PodVolumes(self.client, run.pod, run.root / "volumes", (uid, groups[0] if groups else gid))
            try:
                run.folders = await run.volumes.materialize()
                break
            except (VolumeError, ApiError) as error:
                waiting = _Waiting("CreateContainerConfigError", str(error))
                if run.deleting.is_set():
                    raise waiting from error
            await self._waiting(run, waiting)
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_START)
        run.message = None
        await self._report(run)

    async def _waiting(self, run: PodRun, waiting: _Waiting) -> None:
        for container in run.containers.values():
            container.state = {"waiting": {"reason": waiting.reason, "message": waiting.message}}
        run.message = waiting.message
        await self._report(run)

    def _identity(self, pod_spec: dict[str, Any], container: dict[str, Any]) -> tuple[int, int, tuple[int, ...]]:
        pod_context = pod_spec.get("securityContext") or {}
        context = {**pod_context, **(container.get("securityContext") or {})}
        uid = int(context.get("runAsUser", self.image_uid))
        if context.get("runAsNonRoot") and uid == 0:
            raise _Waiting("CreateContainerConfigError",
                           "container has runAsNonRoot and image will run as root")
        gid = int(context.get("runAsGroup", uid))
        groups = tuple(int(g) for g in ([pod_context["fsGroup"]] if "fsGroup" in pod_context else [])
                       + list(pod_context.get("supplementalGroups") or []))
        return uid, gid, groups

    async def _env(self, run: PodRun, container: dict[str, Any]) -> dict[str, str]:
        namespace = run.pod["metadata"]["namespace"]
        env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOSTNAME": run.pod["metadata"]["name"], "HOME": "/", **self.extra_env,
               "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.apiserver_port),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(self.apiserver_port),
               "KUBERNETES_PORT": f"tcp://127.0.0.1:{self.apiserver_port}"}
        try:
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef") or source.get("configMapRef") or {}
                resource = SECRETS if "secretRef" in source else CONFIGMAPS
                keys = await PodVolumes(self.client, run.pod, run.root, (0, 0))._keys(
                    resource, ref["name"], None, ref.get("optional"))
                env.update({source.get("prefix", "") + k: v.decode() for k, v in keys.items()})
            for entry in container.get("env") or []:
                env[entry["name"]] = await self._env_value(run, namespace, entry, env)
        except (VolumeError, ApiError, KeyError) as error:
            raise _Waiting("CreateContainerConfigError", str(error)) from error
        return env

    async def _env_value(self, run: PodRun, namespace: str, entry: dict[str, Any], env: dict[str, str]) -> str:
        if "value" in entry:
            return expand(str(entry["value"]), env)
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            status = {**(run.pod.get("status") or {}), "podIP": run.ip, "hostIP": HOST_IP}
            return field_value({**run.pod, "status": status}, source["fieldRef"]["fieldPath"])
        for kind, resource in (("secretKeyRef", SECRETS), ("configMapKeyRef", CONFIGMAPS)):
            if kind in source:
                ref = source[kind]
                keys = await PodVolumes(self.client, run.pod, run.root, (0, 0))._keys(
                    resource, ref["name"], [{"key": ref["key"], "path": ref["key"]}], ref.get("optional"))
                return keys.get(ref["key"], b"").decode()
        raise VolumeError(f"env {entry['name']!r}: valueFrom {sorted(source)} is not provided by the node agent")

    def _argv(self, container: dict[str, Any], env: dict[str, str]) -> list[str]:
        command = container.get("command")
        args = container.get("args")
        if command is None:
            command, args = self.entrypoint, self.cmd if args is None else args
        return self.command_resolver([expand(part, env) for part in [*command, *(args or [])]])

    async def _container(self, run: PodRun, container: ContainerRun) -> int:
        """Run one container, restarting it as restartPolicy says; its last exit code."""
        policy = "Never" if container.init else run.pod["spec"].get("restartPolicy", "Always")
        backoff = BACKOFF_START
        while True:
            code = await self._start_once(run, container)
            if run.deleting.is_set() or policy == "Never" or (policy == "OnFailure" and code == 0):
                return code
            container.restarts += 1
            container.last_state, container.state = container.state, {"waiting": {
                "reason": "CrashLoopBackOff", "message": f"back-off {backoff:.0f}s restarting failed container="
                                                         f"{container.name} pod={run.pod['metadata']['name']}"}}
            await self._report(run)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_CAP)

    async def _start_once(self, run: PodRun, container: ContainerRun) -> int:
        spec = container.spec
        env = await self._env(run, spec)
        uid, gid, groups = self._identity(run.pod["spec"], spec)
        message = run.root / f"{container.name}.termination-log"
        message.write_bytes(b"")
        os.chown(message, uid, gid)
        mounts = [sandbox.Mount(run.folders[m["name"]] / m.get("subPath", ""), m["mountPath"], bool(m.get("readOnly")))
                  for m in spec.get("volumeMounts") or []]
        mounts.append(sandbox.Mount(message, spec.get("terminationMessagePath", "/dev/termination-log"), False))
        mounts += [sandbox.Mount(folder, str(folder), False) for folder in self.shared]
        container.identity = sandbox.Identity(uid, gid, groups)
        argv = sandbox.argv(self._argv(spec, env), mounts, container.identity, spec.get("workingDir", "/"))
        if container.log.exists():
            container.log.replace(container.log.with_suffix(".previous.log"))
        container.container_id = f"walkme-node://{uuid.uuid4().hex}"
        with container.log.open("wb") as log:
            container.process = await asyncio.create_subprocess_exec(
                *argv, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=env, start_new_session=True)
        container.started_at = now()
        container.ready = not spec.get("readinessProbe")
        container.state = {"running": {"startedAt": container.started_at}}
        await self._report(run)
        probes = asyncio.create_task(self._probe(run, container))
        try:
            code = await container.process.wait()
        finally:
            probes.cancel()
        container.ready = False
        container.state = {"terminated": {
            "exitCode": code if code >= 0 else 128 - code, "reason": "Completed" if code == 0 else "Error",
            "message": self._termination_message(spec, message, container.log, code),
            "startedAt": container.started_at, "finishedAt": now(), "containerID": container.container_id}}
        await self._report(run)
        return code

    @staticmethod
    def _termination_message(spec: dict[str, Any], path: Path, log: Path, code: int) -> str:
        text = path.read_bytes()[:MESSAGE_LIMIT]
        if not text and code != 0 and spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            text = b"".join(log.read_bytes()[-FALLBACK_LOG_BYTES:].splitlines(keepends=True)[-FALLBACK_LOG_LINES:])
        return text.decode(errors="replace")

    async def _probe(self, run: PodRun, container: ContainerRun) -> None:
        """Readiness and liveness, httpGet and tcpSocket, with the probe's own periods and thresholds."""
        async def loop(probe: dict[str, Any], on_result: Callable[[bool], Any]) -> None:
            await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
            while True:
                await on_result(await _check(probe, container.spec, run.ip))
                await asyncio.sleep(float(probe.get("periodSeconds", 10)))

        failures = 0

        async def readiness(ok: bool) -> None:
            if ok != container.ready:
                container.ready = ok
                await self._report(run)

        async def liveness(ok: bool) -> None:
            nonlocal failures
            failures = 0 if ok else failures + 1
            if failures >= int(container.spec["livenessProbe"].get("failureThreshold", 3)) and container.process:
                _signal(container.process, signal.SIGKILL)

        tasks = [asyncio.create_task(loop(container.spec[name], handler))
                 for name, handler in (("readinessProbe", readiness), ("livenessProbe", liveness))
                 if container.spec.get(name)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _report(self, run: PodRun) -> None:
        """The Pod's status as a kubelet writes it (strategic merge: conditions and containers by key)."""
        meta = run.pod["metadata"]
        image_ids = {c.name: f"{repository(c.spec.get('image', ''))}@sha256:{'0' * 64}"
                     for c in run.containers.values()}
        mains = [c for c in run.containers.values() if not c.init]
        inits = [c for c in run.containers.values() if c.init]
        ready = run.phase == "Running" and all(c.ready and "running" in c.state for c in mains)
        initialized = all("terminated" in c.state and c.state["terminated"]["exitCode"] == 0 for c in inits)
        stamp = now()
        conditions = [{"type": kind, "status": "True" if value else "False", "lastTransitionTime": stamp,
                       "lastProbeTime": None}
                      for kind, value in (("PodReadyToStartContainers", True), ("Initialized", initialized),
                                          ("ContainersReady", ready), ("Ready", ready))]
        status: dict[str, Any] = {
            "phase": run.phase, "conditions": conditions, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
            **({"podIP": run.ip, "podIPs": [{"ip": run.ip}]} if run.ip else {}),
            "startTime": (run.pod.get("status") or {}).get("startTime") or stamp,
            "containerStatuses": [c.status(image_ids[c.name]) for c in mains],
            "initContainerStatuses": [c.status(image_ids[c.name]) for c in inits],
            "message": run.message, "reason": run.reason,
        }
        if not inits:
            del status["initContainerStatuses"]
        for attempt in range(1, REPORT_ATTEMPTS + 1):
            try:
                answer = await self.client.request("PATCH", PODS.path(meta["namespace"], meta["name"], "status"),
                                                   {"status": status}, "application/strategic-merge-patch+json")
            except ApiError:
                return
            except (OSError, aiohttp.ClientError, TimeoutError):  # a busy apiserver, a closed kept-alive connection
                if attempt == REPORT_ATTEMPTS:
                    raise
                await asyncio.sleep(attempt / 2)
                continue
            if answer.get("metadata", {}).get("uid") == meta["uid"]:
                run.pod = {**answer, "metadata": {**answer["metadata"]}}
            return

    # --- container logs, for `kubectl logs` through the apiserver ---------------------------------

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.load_cert_chain(str(self.serving.cert), str(self.serving.key))
        context.verify_mode = ssl.CERT_REQUIRED
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        run = self.pods.get((request.match_info["namespace"], request.match_info["pod"]))
        container = run.containers.get(request.match_info["container"]) if run else None
        if container is None:
            raise web.HTTPNotFound(text=f"container {request.match_info['container']!r} of pod "
                                        f"{request.match_info['pod']!r} is not on node {self.name}")
        path = container.log.with_suffix(".previous.log") if request.query.get("previous") == "true" else container.log
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        whole = path.read_bytes() if path.exists() else b""
        sent = len(whole)
        if "tailLines" in request.query:
            whole = b"".join(whole.splitlines(keepends=True)[-int(request.query["tailLines"]):])
        if "limitBytes" in request.query:
            whole = whole[: int(request.query["limitBytes"])]
        await response.write(whole)
        while request.query.get("follow") == "true":
            running = container.process is not None and container.process.returncode is None
            with path.open("rb") as log:
                log.seek(sent)
                more = log.read()
            sent += len(more)
            if more:
                await response.write(more)
            if not running:
                break
            await asyncio.sleep(0.2)
        await response.write_eof()
        return response


class _Waiting(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _signal(process: asyncio.subprocess.Process, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, number)


def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the container's own process, bwrap's child, as a runtime signals a container's first process.
    Not to bwrap: it would die of it at once, and the process it runs (setpriv's change of uid clears its
    parent-death signal) would go on shutting down unwatched — after the Pod's final delete, with a token
    the apiserver no longer accepts."""
    try:
        children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    except OSError:
        children = []
    for pid in children or [process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


async def _check(probe: dict[str, Any], container: dict[str, Any], pod_ip: str) -> bool:
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    timeout = float(probe.get("timeoutSeconds", 1))
    target = probe.get("httpGet") or probe.get("tcpSocket")
    if target is None:
        return True  # exec and grpc probes are not run by the node agent: counted as passing
    port = target["port"] if isinstance(target["port"], int) else ports.get(target["port"], 0)
    host = target.get("host") or pod_ip  # a kubelet probes the pod IP unless the probe names a host
    try:
        if "httpGet" in probe:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, session.get(
                    f"http://{host}:{port}{target.get('path', '/')}") as answer:
                return 200 <= answer.status < 400
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.close()
        return True
    except (OSError, aiohttp.ClientError, TimeoutError):
        return False
