"""`bash scripts/demo.sh`: the whole flow on this machine, on a real Kubernetes control plane.

Starts on 127.0.0.1: an S3 server (moto) holding examples/demo/data/hr-users.csv and a fake WalkMe
API seeded with sample Insights data; etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (built from their Go modules, see controlplane.py); the node agent, which runs each
Pod bound to its Node as local processes (node_agent.py). Then, with a real helm and kubectl: `helm
install`s charts/walkme-dic, so the operator runs in-cluster as its ServiceAccount under the
chart's RBAC, in a namespace whose Pod Security level is restricted; `kubectl apply`s
examples/demo/*.yaml; waits until both Integrations have synced (each run a Job whose Pod is the
real `walkme-dic sync`), and prints what kubectl shows and where the data landed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import yaml

from walkme_dic_dev.cluster import RESTRICTED, Cluster
from walkme_dic_dev.controlplane import ControlPlane
from walkme_dic_dev.egress import loopback_values
from walkme_dic_dev.fake_walkme import FakeWalkMe
from walkme_dic_dev.node_agent import NodeAgent
from walkme_dic_dev.tools import ensure_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "walkme-dic"
DEMO_DIR = REPO / "examples" / "demo"
DEFAULT_KUBECONFIG = REPO / ".cache" / "demo-kubeconfig"
RELEASE = OPERATOR_NAMESPACE = "walkme-dic"
NAMESPACE = "walkme-demo"
BUCKET = "acme-data-lake"
API = "integrations.walkme.io/v1alpha1"
INTEGRATIONS = ("hr-users-to-walkme", "walkme-users-to-lake")
# the demo integration's properties as an admin sets them up in the console (examples/demo/20-inbound-users.yaml)
DEMO_PROPERTIES = {"department": "String", "region": "String", "startDate": "Date", "active": "String"}
S3_CREDENTIALS = {"aws_access_key_id": "demo-access-key", "aws_secret_access_key": "demo-secret-key"}
# Demo settings on top of the chart's defaults: resync passes every 5 s instead of 30 s.
HELM_SETTINGS = ("operator.resync=5",)


class DemoFailed(Exception):
    """Something the person running the demo should read."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_manifests(directory: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    """examples/demo/*.yaml in file order with ${VAR} filled in; Namespaces get the restricted
    Pod Security level, as a platform team's tenant namespaces have."""
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], path.read_text())
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    for doc in documents:
        if doc["kind"] == "Namespace":
            doc["metadata"]["labels"] = {**doc["metadata"].get("labels", {}), **RESTRICTED}
    return documents


def say(text: str = "") -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, keep_running: bool, timeout: float, kubeconfig: Path = DEFAULT_KUBECONFIG) -> None:
        self.keep_running = keep_running
        self.kubeconfig = kubeconfig.absolute()
        self.timeout = timeout
        self.client_id = "demo-client"
        self.client_secret = secrets.token_urlsafe(16)
        self.integration_token = secrets.token_urlsafe(16)
        self.tools: dict[str, Path] = {}

    async def run(self) -> int:
        """The whole demo in a fresh folder, removed afterwards unless something failed (its logs are there)."""
        workdir = Path(tempfile.mkdtemp(prefix="walkme-dic-demo-"))
        try:
            await self._run(workdir)
        except asyncio.CancelledError:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        except Exception:
            print(f"\nlogs of the control plane and of every container: {workdir}", file=sys.stderr)
            raise
        shutil.rmtree(workdir, ignore_errors=True)
        return 0

    async def _run(self, workdir: Path) -> None:
        from moto.server import ThreadedMotoServer

        started = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            moto_port = free_port()
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
            moto.start()
            stack.callback(moto.stop)
            walkme = FakeWalkMe(clients={self.client_id: self.client_secret},
                                integration_tokens={self.integration_token})
            walkme.declare(self.integration_token, DEMO_PROPERTIES)  # as set up in the console
            walkme_url = walkme.start()
            stack.callback(walkme.stop)
            walkme.seed_demo_data(25)
            s3_url = f"http://127.0.0.1:{moto_port}"
            say(f"● S3 (moto) on {s3_url}, fake WalkMe API on {walkme_url}")
            self._seed_bucket(s3_url)

            say("● Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
            plane = await asyncio.to_thread(ControlPlane, workdir / "control-plane")  # builds on first use
            stack.callback(plane.stop)
            await _finish_even_if_cancelled(plane.start)  # stopped only once it has started every component
            self.tools = {"kubectl": plane.bin_dir / "kubectl", "helm": await asyncio.to_thread(ensure_binary, "helm")}
            version = plane.version()
            say(f"  kube-apiserver {version['gitVersion']} on {plane.url} (logs in {plane.workdir})")
            self._write_kubeconfig(plane)
            stack.callback(self.kubeconfig.unlink, missing_ok=True)
            say(f"  export KUBECONFIG={self.kubeconfig}")
            cluster = await stack.enter_async_context(Cluster(plane))
            serving = plane.authority.issue("node-serving", "walkme-node", client=False, hosts=("127.0.0.1",))
            await stack.enter_async_context(NodeAgent(
                plane.node_credentials(), serving, plane.ca, plane.port, workdir=workdir / "node",
                extra_env={"AWS_EC2_METADATA_DISABLED": "true"}))
            say("● node agent: Node walkme-node is Ready (each container a local process in a bubblewrap sandbox)")

            await self._install_chart(cluster)
            values = {"S3_PORT": str(moto_port), "WALKME_PORT": walkme_url.rstrip("/").rsplit(":", 1)[1],
                      "WALKME_CLIENT_ID": self.client_id,
                      "WALKME_CLIENT_SECRET": self.client_secret, "WALKME_INTEGRATION_TOKEN": self.integration_token}
            manifests = yaml.safe_dump_all(render_manifests(DEMO_DIR, values))
            await self.show(["kubectl", "apply", "-f", "-"], stdin=manifests,
                            typed="kubectl apply -f -   # examples/demo/*.yaml, ${…} filled in with the local "
                                  "servers' ports and credentials")
            await self._wait_synced(cluster)
            await self._report(cluster, s3_url, walkme)
            say(f"\n✔ demo finished in {time.monotonic() - started:.1f}s")
            if self.keep_running:
                await self._stay_up(plane)

    def _seed_bucket(self, s3_url: str) -> None:
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **S3_CREDENTIALS)
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(DEMO_DIR / "data" / "hr-users.csv"), BUCKET, "walkme/inbound/hr-users.csv")
        say(f"● uploaded examples/demo/data/hr-users.csv to s3://{BUCKET}/walkme/inbound/hr-users.csv")

    def _write_kubeconfig(self, plane: ControlPlane) -> None:
        """The admin's kubeconfig with the certificates inlined (`kubectl config view --flatten`)."""
        flat = subprocess.run([str(self.tools["kubectl"]), "config", "view", "--flatten", "--kubeconfig",
                               str(plane.admin_kubeconfig)], capture_output=True, text=True, check=True).stdout
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        partial = self.kubeconfig.with_name(f".{self.kubeconfig.name}.partial")
        partial.write_text(flat)
        partial.chmod(0o600)
        partial.replace(self.kubeconfig)

    async def show(self, argv: list[str], stdin: str | None = None, typed: str | None = None) -> None:
        """Run ``argv`` (kubectl or helm, against the demo's kubeconfig), print it as typed and what it said."""
        say(f"\n$ {typed or shlex.join(argv)}")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        process = await asyncio.create_subprocess_exec(
            str(self.tools[argv[0]]), *argv[1:], cwd=REPO, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await process.communicate(stdin.encode() if stdin is not None else None)
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise
        say(out.decode(errors="replace").rstrip())
        if process.returncode != 0:
            raise DemoFailed(f"{shlex.join(argv)} exited with {process.returncode}")

    async def _install_chart(self, cluster: Cluster) -> None:
        await cluster.ensure_namespace(OPERATOR_NAMESPACE)
        say(f"● namespace {OPERATOR_NAMESPACE}, Pod Security level restricted (enforced by the apiserver)")
        settings = [arg for setting in HELM_SETTINGS for arg in ("--set", setting)]
        settings += ["--set-json", f"egress={json.dumps(loopback_values())}"]  # the demo's systems are on loopback
        await self.show(["helm", "install", RELEASE, str(CHART.relative_to(REPO)), "-n", OPERATOR_NAMESPACE,
                             *settings, "--wait", "--timeout", "3m"])
        await self.show(["kubectl", "get", "deploy,pods", "-n", OPERATOR_NAMESPACE])

    async def _wait_synced(self, cluster: Cluster) -> None:
        say("\n● waiting for both Integrations to sync")
        deadline = time.monotonic() + self.timeout
        last = ""
        while time.monotonic() < deadline:
            states = []
            done = 0
            for name in INTEGRATIONS:
                obj = await cluster.get(API, "Integration", NAMESPACE, name)
                status = obj.get("status") or {}
                synced = _condition(obj, "Synced")
                if synced.get("status") == "False":
                    raise DemoFailed(f"Integration {name} failed: {synced.get('reason')}: {synced.get('message')}")
                if synced.get("status") == "True" and not status.get("activeRun"):
                    done += 1
                ready = _condition(obj, "Ready")
                states.append(f"{name}: {ready.get('reason', 'Pending')}")
            line = "  " + " | ".join(states)
            if line != last:
                say(line)
                last = line
            if done == len(INTEGRATIONS):
                return
            await asyncio.sleep(0.5)
        raise DemoFailed(f"the Integrations did not sync within {self.timeout:.0f}s (last state: {last.strip()}); "
                         f"the operator's log: kubectl logs deploy/{RELEASE} -n {OPERATOR_NAMESPACE}")

    async def _report(self, cluster: Cluster, s3_url: str, walkme: FakeWalkMe) -> None:
        await self.show(["kubectl", "get", "wmconn,wmint", "-n", NAMESPACE])
        await self.show(["kubectl", "get", "jobs,pods", "-n", NAMESPACE])
        for name in INTEGRATIONS:
            obj = await cluster.get(API, "Integration", NAMESPACE, name)
            say(f"\nIntegration {name} conditions:")
            for cond in obj["status"]["conditions"]:
                say(f"  {cond['type']:<12} {cond['status']:<8} {cond['reason']:<20} {cond['message']}")
            run = obj["status"]["runs"][0]
            say(f"  last run {run['name']}: {run['result']} — {run.get('message', '')}")
        await self.show(["kubectl", "get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"])
        say("\nWhere the data landed:")
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **S3_CREDENTIALS)
        for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="walkme/exports/").get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
            rows = list(csv.DictReader(io.StringIO(body)))
            say(f"  s3://{BUCKET}/{item['Key']}: {len(rows)} rows, {item['Size']} bytes")
        users = walkme.users()
        say(f"  WalkMe user attributes: {len(users)} users imported")
        for user_id, attributes in sorted(users.items()):
            say(f"    {user_id}: {attributes}")

    async def run_until_stopped(self) -> int:
        """run(), with SIGTERM (docker stop, CI, a test) shutting down as cleanly as Ctrl-C."""
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await self.run()
        except asyncio.CancelledError:
            return 143

    async def _stay_up(self, plane: ControlPlane) -> None:
        path = os.pathsep.join(str(self.tools[name].parent) for name in ("kubectl", "helm"))
        say(f"\nEverything stays up. In another shell:\n"
            f"  export KUBECONFIG={self.kubeconfig} PATH={path}{os.pathsep}$PATH\n"
            f"  kubectl get wmconn,wmint -n {NAMESPACE}\n"
            f"  helm status {RELEASE} -n {OPERATOR_NAMESPACE}\n"
            f"  kubectl logs deploy/{RELEASE} -n {OPERATOR_NAMESPACE}\n"
            "and the other commands of README's section \"kubectl against the demo\".\n"
            f"Control plane logs: {plane.workdir}. Press Ctrl-C to stop.")
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM cancels the demo


async def _finish_even_if_cancelled(work: Callable[[], None]) -> None:
    """``work()`` in a thread; a Ctrl-C or SIGTERM meanwhile is raised once it has returned, so that
    what it started is there to be stopped."""
    running = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        await asyncio.shield(running)
    except asyncio.CancelledError:
        await running
        raise


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--keep-running", action="store_true",
                        help="Leave everything up for kubectl and helm (Ctrl-C stops it).")
    parser.add_argument("--timeout", type=float, default=120, help="Seconds to wait for the syncs.")
    parser.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG,
                        help="Where the demo writes the admin's kubeconfig (default: .cache/demo-kubeconfig).")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    try:
        return asyncio.run(Demo(args.keep_running, args.timeout, args.kubeconfig).run_until_stopped())
    except DemoFailed as failure:
        print(f"\n✘ demo failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
