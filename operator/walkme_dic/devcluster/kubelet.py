"""A job runner that plays kubelet and the Job controller for the dev cluster.

For every batch/v1 Job it sees (through the HTTP API, like a real node would), it creates a Pod,
runs the container's command as a local subprocess, and writes Pod and Job status the way
Kubernetes does: containerStatuses[].state.terminated with exitCode, reason and the termination
message; Job startTime, active/succeeded/failed, completionTime and Complete/Failed conditions.

What it maps to the local machine:
* Secret and ConfigMap volumes become temp directories (one file per key, or the listed items);
  emptyDir volumes become empty temp directories;
* every argv element or env value that starts with a volumeMount's mountPath, or equals the
  container's terminationMessagePath, is rewritten to the local path;
* a leading ``walkme-dic`` in the command becomes ``python -m walkme_dic`` of this interpreter
  (``command_resolver`` can map commands differently, e.g. a script that hangs for a test).

Retries follow spec.backoffLimit (a new Pod per attempt); spec.activeDeadlineSeconds kills the
process (reason DeadlineExceeded); a Job deleted while running has its process killed.

Like a real kubelet it registers a Node (``dev-node``: InternalIP 127.0.0.1 and the port of its own
HTTP server in ``status.daemonEndpoints``), binds every Pod to it (``spec.nodeName``) and serves
``/containerLogs/<namespace>/<pod>/<container>`` (``follow``, ``tailLines``) from the process's
stdout and stderr, which the API server proxies for ``kubectl logs``.
Not emulated: images, resource limits, security contexts, init containers, several containers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from walkme_dic.devcluster.httpserver import BackgroundServer
from walkme_dic.kube import JOBS, PODS, SECRETS, ApiError, KubeClient, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")
NODES = Resource("", "v1", "nodes", namespaced=False)
MESSAGE_LIMIT = 4096
CommandResolver = Callable[[list[str]], list[str]]


def default_command(argv: list[str]) -> list[str]:
    if argv and argv[0] == "walkme-dic":
        return [sys.executable, "-m", "walkme_dic", *argv[1:]]
    return argv


@dataclass
class PodRun:
    name: str
    job: str
    namespace: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None


@dataclass
class Kubelet:
    """``async with Kubelet(client) as kubelet:`` runs Jobs until exited."""

    client: KubeClient
    namespace: str | None = None
    command_resolver: CommandResolver = default_command
    relist_seconds: float = 0.2
    extra_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="walkme-dic-kubelet-")))
    node_name: str = "dev-node"
    pods: dict[str, PodRun] = field(default_factory=dict)
    _tasks: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    _loop: asyncio.Task[None] | None = None
    _server: LogServer | None = None

    async def __aenter__(self) -> Kubelet:
        self._server = LogServer(self)
        await self._server.start_async()
        await self._register_node(int(self._server.url.rsplit(":", 1)[1]))
        self._loop = asyncio.create_task(self._run())
        return self

    async def _register_node(self, port: int) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name,
                                                                 "labels": {"kubernetes.io/hostname": self.node_name}},
                "spec": {}}
        status = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": self.node_name}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                  "message": "dev kubelet is posting ready status",
                                  "lastHeartbeatTime": _ts(datetime.now(UTC)),
                                  "lastTransitionTime": _ts(datetime.now(UTC))}]}
        try:
            await self.client.create(NODES, "", node)
        except ApiError as error:
            if error.status != 409:
                raise
        await self.client.patch(NODES, "", self.node_name, {"status": status}, status=True)

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        tasks = [t for t in [self._loop, *self._tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._server is not None:
            await self._server.stop_async()
            self._server = None

    def logs(self, pod: str) -> str:
        run = self.pods.get(pod)
        return run.log_path.read_text(errors="replace") if run and run.log_path.exists() else ""

    async def _run(self) -> None:
        """List Jobs, then watch them from the list's resourceVersion; re-list whenever the watch ends."""
        while True:
            with contextlib.suppress(ApiError, OSError, aiohttp.ClientError, TimeoutError):
                listing = await self.client.request("GET", JOBS.path(self.namespace))
                jobs = listing["items"]
                listed = {(j["metadata"]["namespace"], j["metadata"]["name"]) for j in jobs}
                for key in [k for k in self._tasks if k not in listed]:
                    self._tasks.pop(key).cancel()  # the Job was deleted: its process goes with it
                for job in jobs:
                    self._start(job)
                async for event, job in self.client.watch(JOBS, self.namespace, listing["metadata"]["resourceVersion"]):
                    if event == "DELETED":
                        task = self._tasks.pop((job["metadata"]["namespace"], job["metadata"]["name"]), None)
                        if task is not None:
                            task.cancel()
                    else:
                        self._start(job)
            await asyncio.sleep(self.relist_seconds)

    def _start(self, job: dict[str, Any]) -> None:
        """Run a Job that is new to this kubelet, unless it has finished or is being deleted."""
        meta = job["metadata"]
        key = (meta["namespace"], meta["name"])
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in (job.get("status") or {}).get("conditions") or [])
        if key not in self._tasks and not finished and not meta.get("deletionTimestamp"):
            self._tasks[key] = asyncio.create_task(self._run_job(job))

    async def _run_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        namespace, name = meta["namespace"], meta["name"]
        started = datetime.now(UTC)
        deadline = spec.get("activeDeadlineSeconds")
        backoff_limit = int(spec.get("backoffLimit", 6))
        await self._job_status(namespace, name, {"startTime": _ts(started), "active": 1})
        failures = 0
        while True:
            remaining = None if deadline is None else deadline - (datetime.now(UTC) - started).total_seconds()
            try:
                exit_code = await asyncio.wait_for(self._run_pod(job, failures), timeout=remaining)
            except TimeoutError:
                await self._finish(namespace, name, failures, "Failed", "DeadlineExceeded",
                                   "Job was active longer than specified deadline")
                return
            if exit_code == 0:
                await self._job_status(namespace, name, {
                    "active": None, "succeeded": 1, "failed": failures or None,
                    "completionTime": _ts(datetime.now(UTC)),
                    "conditions": [_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of "
                                              "succeeded pods"),
                                   _condition("Complete", "CompletionsReached", "Reached expected number of "
                                              "succeeded pods")],
                })
                return
            failures += 1
            if failures > backoff_limit:
                await self._finish(namespace, name, failures, "Failed", "BackoffLimitExceeded",
                                   "Job has reached the specified backoff limit")
                return
            await self._job_status(namespace, name, {"failed": failures})

    async def _finish(self, namespace: str, name: str, failures: int, kind: str, reason: str, message: str) -> None:
        await self._job_status(namespace, name, {
            "active": None, "failed": max(failures, 1),
            "conditions": [_condition("FailureTarget", reason, message), _condition(kind, reason, message)],
        })

    async def _job_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.client.patch(JOBS, namespace, name, {"status": status}, status=True)

    async def _run_pod(self, job: dict[str, Any], attempt: int) -> int:
        meta = job["metadata"]
        namespace = meta["namespace"]
        template = job["spec"]["template"]
        pod_name = f"{meta['name'][:57]}-{uuid.uuid4().hex[:5]}"
        labels = {**(template.get("metadata") or {}).get("labels", {}),
                  "job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"],
                  "controller-uid": meta["uid"], "batch.kubernetes.io/controller-uid": meta["uid"]}
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "labels": labels,
                         "annotations": (template.get("metadata") or {}).get("annotations", {}),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {**template["spec"], "nodeName": self.node_name},
            "status": {"phase": "Pending"},
        }
        await self.client.create(PODS, namespace, pod)
        container = template["spec"]["containers"][0]
        root = self.workdir / pod_name
        root.mkdir(parents=True)
        run = PodRun(pod_name, meta["name"], namespace, root / "log")
        self.pods[pod_name] = run
        try:
            mounts = await self._materialize_volumes(namespace, template["spec"], container, root)
            message_path = root / "termination-log"
            message_path.touch()
            message_in_pod = container.get("terminationMessagePath", "/dev/termination-log")

            def local(value: str) -> str:
                if value == message_in_pod:
                    return str(message_path)
                return _rewrite(value, mounts, root / "fs")

            argv = self.command_resolver([local(a) for a in
                                          [*container.get("command", []), *container.get("args", [])]])
            env = {**os.environ, **self.extra_env,
                   **{e["name"]: local(await self._env_value(namespace, e)) for e in container.get("env", [])}}
            started = _ts(datetime.now(UTC))
            await self._pod_status(namespace, pod_name, {
                "phase": "Running", "startTime": started,
                "containerStatuses": [{"name": container["name"], "ready": True, "restartCount": 0,
                                       "state": {"running": {"startedAt": started}}}]})
            with run.log_path.open("wb") as log:
                run.process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log, env=env,
                                                                   cwd=str(root), start_new_session=True)
                try:
                    exit_code = await run.process.wait()
                except asyncio.CancelledError:
                    _kill(run.process)
                    await run.process.wait()
                    await self._pod_status(namespace, pod_name, {"phase": "Failed", "reason": "DeadlineExceeded"})
                    raise
            message = message_path.read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
            if not message and exit_code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                message = run.log_path.read_bytes()[-2048:].decode(errors="replace")
            await self._pod_status(namespace, pod_name, {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [{"name": container["name"], "ready": False, "restartCount": 0, "state": {
                    "terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                   "message": message, "startedAt": started,
                                   "finishedAt": _ts(datetime.now(UTC))}}}]})
            return exit_code
        finally:
            shutil.rmtree(root / "fs", ignore_errors=True)

    async def _pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            await self.client.patch(PODS, namespace, name, {"status": status}, status=True)

    async def _materialize_volumes(
        self, namespace: str, pod_spec: dict[str, Any], container: dict[str, Any], root: Path,
    ) -> list[str]:
        """Volumes laid out under <root>/fs/<mountPath>; returns the mount paths."""
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        mounts: list[str] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            local = root / "fs" / mount["mountPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                source = volume["secret"]
                data = await self._data(SECRETS, namespace, source["secretName"], decode=True)
                _write_items(local, data, source.get("items"))
            elif "configMap" in volume:
                source = volume["configMap"]
                data = await self._data(CONFIGMAPS, namespace, source["name"], decode=False)
                _write_items(local, data, source.get("items"))
            mounts.append(mount["mountPath"].rstrip("/"))
        return mounts

    async def _data(self, resource: Resource, namespace: str, name: str, *, decode: bool) -> dict[str, bytes]:
        obj = await self.client.get(resource, namespace, name)
        data = obj.get("data") or {}
        return {k: base64.b64decode(v) if decode else str(v).encode() for k, v in data.items()}

    async def _env_value(self, namespace: str, entry: dict[str, Any]) -> str:
        if "value" in entry:
            return str(entry["value"])
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            return (await self._data(SECRETS, namespace, ref["name"], decode=True))[ref["key"]].decode()
        return ""


class LogServer(BackgroundServer):
    """The kubelet's own HTTP endpoint: container logs, as the API server's pods/log proxies them."""

    thread_name = "dev-kubelet"

    def __init__(self, kubelet: Kubelet) -> None:
        super().__init__()
        self.kubelet = kubelet

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        return app

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        run = self.kubelet.pods.get(request.match_info["pod"])
        if run is None or run.namespace != request.match_info["namespace"]:
            raise web.HTTPNotFound(text=f'pod "{request.match_info["pod"]}" is not on this node')
        follow = request.query.get("follow") in ("true", "1")
        tail = request.query.get("tailLines")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        whole = run.log_path.read_bytes() if run.log_path.exists() else b""
        sent = len(whole)  # follow on from what was read: nothing written in between is skipped
        text = b"".join(whole.splitlines(keepends=True)[-int(tail):]) if tail is not None else whole
        await response.write(text)
        while follow:
            running = run.process is None or run.process.returncode is None
            with run.log_path.open("rb") as log:
                log.seek(sent)
                more = log.read()
            sent += len(more)
            await response.write(more)
            if not running:
                break
            await asyncio.sleep(0.2)
        await response.write_eof()
        return response


def _write_items(directory: Path, data: dict[str, bytes], items: list[dict[str, str]] | None) -> None:
    for item in items or [{"key": k, "path": k} for k in data]:
        if item["key"] not in data:
            raise KeyError(f"key {item['key']!r} not found in the volume source")
        target = directory / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[item["key"]])


def _rewrite(value: str, mounts: list[str], fs_root: Path) -> str:
    """An absolute path at or above or below a mount point, moved under the pod's local root."""
    if not value.startswith("/"):
        return value
    path = value.rstrip("/") or "/"
    for mount in mounts:
        if path == mount or path.startswith(mount + "/") or mount.startswith(path + "/"):
            return str(fs_root / value.lstrip("/"))
    return value


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)


def _condition(kind: str, reason: str, message: str) -> dict[str, str]:
    now = _ts(datetime.now(UTC))
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
