"""`walkme-dic demo`: the whole flow on this machine, no cluster needed.

Starts on 127.0.0.1: the dev Kubernetes API, an S3 server (moto), a fake WalkMe API seeded with
sample Insights data, the dev kubelet (each sync a real `walkme-dic sync` subprocess) and the
operator. Applies examples/demo/*.yaml, waits until both Integrations have synced, and prints
the resources, their conditions, the Events and where the data landed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import os
import re
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import kopf
import yaml

from walkme_dic.controllers.run import OperatorThread
from walkme_dic.controllers.runtime import OperatorConfig
from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.kubelet import Kubelet
from walkme_dic.devcluster.printing import render_table
from walkme_dic.jobs.manifest import JobImage

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "examples" / "demo"
NAMESPACE = "walkme-demo"
BUCKET = "acme-data-lake"
API = "integrations.walkme.io/v1alpha1"
INTEGRATIONS = ("hr-users-to-walkme", "walkme-users-to-lake")


class DemoFailed(Exception):
    """Something the person running the demo should read."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_manifests(directory: Path, values: dict[str, str]) -> list[dict[str, Any]]:
    """examples/demo/*.yaml in file order with ${VAR} filled in."""
    documents = []
    for path in sorted(directory.glob("*.yaml")):
        text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], path.read_text())
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def say(text: str = "") -> None:
    print(text, flush=True)


DEFAULT_KUBECONFIG = REPO / ".cache" / "demo-kubeconfig"


class Demo:
    def __init__(self, keep_running: bool, timeout: float, kubeconfig: Path = DEFAULT_KUBECONFIG) -> None:
        self.keep_running = keep_running
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.client_id = "demo-client"
        self.client_secret = secrets.token_urlsafe(16)
        self.integration_token = secrets.token_urlsafe(16)

    async def run(self) -> int:
        from moto.server import ThreadedMotoServer

        from walkme_dic_dev.fake_walkme import FakeWalkMe

        started = time.monotonic()
        moto_port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        moto.start()
        walkme = FakeWalkMe(clients={self.client_id: self.client_secret},
                            integration_tokens={self.integration_token})
        walkme_url = walkme.start()
        walkme.seed_demo_data(25)
        s3_url = f"http://127.0.0.1:{moto_port}"
        say(f"● S3 (moto) on {s3_url}, fake WalkMe API on {walkme_url}")
        try:
            self._seed_bucket(s3_url)
            async with DevCluster() as cluster:
                say(f"● Kubernetes API (emulated) on {cluster.url}")
                env = {"AWS_EC2_METADATA_DISABLED": "true"}
                async with Kubelet(cluster.client, extra_env=env):
                    return await self._with_operator(cluster, s3_url, walkme_url, walkme, started)
        finally:
            walkme.stop()
            moto.stop()

    def _seed_bucket(self, s3_url: str) -> None:
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                          aws_access_key_id="demo-access-key", aws_secret_access_key="demo-secret-key")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(DEMO_DIR / "data" / "hr-users.csv"), BUCKET, "walkme/inbound/hr-users.csv")
        say(f"● uploaded examples/demo/data/hr-users.csv to s3://{BUCKET}/walkme/inbound/hr-users.csv")

    async def _with_operator(
        self, cluster: DevCluster, s3_url: str, walkme_url: str, walkme: Any, started: float,
    ) -> int:
        config = OperatorConfig(access=cluster.access, image=JobImage("walkme-dic:demo"), resync_seconds=2,
                                metrics_port=None)
        operator = OperatorThread(config)
        await asyncio.to_thread(operator.start)
        try:
            say("● operator started (kopf, Kubernetes executor, dev kubelet)")
            values = {"S3_PORT": s3_url.rsplit(":", 1)[1], "WALKME_PORT": walkme_url.rstrip("/").rsplit(":", 1)[1],
                      "WALKME_CLIENT_ID": self.client_id,
                      "WALKME_CLIENT_SECRET": self.client_secret, "WALKME_INTEGRATION_TOKEN": self.integration_token}
            for obj in render_manifests(DEMO_DIR, values):
                await cluster.apply(obj)
                say(f"  applied {obj['kind']}/{obj['metadata']['name']}")
            await self._wait_synced(cluster)
            await self._report(cluster, s3_url, walkme)
            say(f"\n✔ demo finished in {time.monotonic() - started:.1f}s")
            if self.keep_running:
                await self._stay_up(cluster)
            return 0
        finally:
            await asyncio.to_thread(operator.stop)

    async def _wait_synced(self, cluster: DevCluster) -> None:
        say("● waiting for both Integrations to sync")
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
        raise DemoFailed(f"the Integrations did not sync within {self.timeout:.0f}s (last state: {last.strip()})")

    async def _report(self, cluster: DevCluster, s3_url: str, walkme: Any) -> None:
        for kind in ("Connection", "Integration"):
            items = await cluster.list(API, kind, NAMESPACE)
            rtype = cluster.type_of(cluster.resource(API, kind))
            say(f"\n$ kubectl get {kind.lower()}s -n {NAMESPACE}")
            say(format_table(render_table(rtype, items, _now())))
        for name in INTEGRATIONS:
            obj = await cluster.get(API, "Integration", NAMESPACE, name)
            say(f"\nIntegration {name} conditions:")
            for cond in obj["status"]["conditions"]:
                say(f"  {cond['type']:<12} {cond['status']:<8} {cond['reason']:<20} {cond['message']}")
            run = obj["status"]["runs"][0]
            say(f"  last run {run['name']}: {run['result']} — {run.get('message', '')}")
        events = await cluster.list("v1", "Event", NAMESPACE)
        say(f"\n$ kubectl get events -n {NAMESPACE}")
        for event in sorted(events, key=lambda e: e["metadata"].get("resourceVersion", "0").zfill(12)):
            involved = event.get("involvedObject", {})
            say(f"  {event.get('type', ''):<8} {event.get('reason', ''):<16} "
                f"{involved.get('kind', '')}/{involved.get('name', '')}: {event.get('message', '')}")
        say("\nWhere the data landed:")
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                          aws_access_key_id="demo-access-key", aws_secret_access_key="demo-secret-key")
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

    async def _stay_up(self, cluster: DevCluster) -> None:
        kubeconfig = cluster.write_kubeconfig(self.kubeconfig)
        say(f"\nEverything stays up. Try:\n  export KUBECONFIG={kubeconfig}\n"
            f"  kubectl get wmconn,wmint -n {NAMESPACE}\n"
            "and the other commands of README's section \"kubectl against the demo\".\nPress Ctrl-C to stop.")
        await asyncio.Event().wait()  # until Ctrl-C or SIGTERM cancels the demo


def format_table(table: dict[str, Any]) -> str:
    """As plain `kubectl get` prints it: priority-0 columns only (the rest is `-o wide`)."""
    shown = [i for i, c in enumerate(table["columnDefinitions"]) if not c.get("priority")]
    headers = [table["columnDefinitions"][i]["name"].upper() for i in shown]
    rows = [[str(row["cells"][i]) for i in shown] for row in table["rows"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="walkme-dic demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep-running", action="store_true",
                        help="Leave everything up and write a kubeconfig for kubectl.")
    parser.add_argument("--timeout", type=float, default=90, help="Seconds to wait for the syncs.")
    parser.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG,
                        help="Where --keep-running writes the kubeconfig (default: .cache/demo-kubeconfig).")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    kopf.configure(quiet=True)
    for noisy in ("werkzeug", "kopf"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return asyncio.run(Demo(args.keep_running, args.timeout, args.kubeconfig).run_until_stopped())
    except DemoFailed as failure:
        print(f"\n✘ demo failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
