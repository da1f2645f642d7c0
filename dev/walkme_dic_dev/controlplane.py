"""The real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, built from their Go modules by scripts/build-controlplane.sh and started here.

What a real cluster has and this one has too: TLS everywhere but etcd (loopback only), client
certificates for every component, Node and RBAC authorization, the default admission plugins plus
NodeRestriction (PodSecurity among them), a service-account issuer and signing key (TokenRequest and
projected tokens work), the controller manager's controllers each with its own service account
(Jobs, garbage collection, namespaces, service accounts and their tokens, ReplicaSets, Deployments,
node lifecycle, the root-CA ConfigMap), and the scheduler. There is no kubelet: the node agent
(node_agent.py) registers the one Node and runs what is scheduled there.

What it leaves out: kube-proxy and cluster DNS (Pods run in the host's network; the `kubernetes`
Service's ClusterIP routes nowhere, so Pods are given the apiserver's loopback address, as
KUBERNETES_SERVICE_HOST/PORT), cloud controllers, and the endpoint reconciler (it would publish
127.0.0.1 as the `kubernetes` endpoints, which validation refuses).

Speed over durability, as envtest does: etcd runs with --unsafe-no-fsync in a folder of its own.

Every request is audited at the Metadata level (who, verb, resource, response code, user agent; no
bodies) as JSON lines in ``audit_log``: the RBAC tests read what the operator's ServiceAccount did there.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import yaml

from walkme_dic_dev.pki import Authority, Pair, signing_key

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-controlplane.sh"
BIN_ENV = "WALKME_DIC_CONTROLPLANE_BIN"
NODE_NAME = "walkme-node"
SERVICE_CIDR = "10.96.0.0/16"
ADMIN_USER = "walkme-dic-admin"
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}]}


class ControlPlaneError(RuntimeError):
    """A component did not build, start or become ready: what and where its log is."""


def ensure_built() -> Path:
    """The folder holding the five binaries: ``$WALKME_DIC_CONTROLPLANE_BIN``, or built (cached) now."""
    configured = os.environ.get(BIN_ENV)
    if configured:
        return Path(configured)
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
                          check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {done.returncode}); its output is above")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, client: Pair, namespace: str = "default") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "walkme-dic-dev", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": "walkme-dic-dev",
                      "context": {"cluster": "walkme-dic-dev", "user": user, "namespace": namespace}}],
        "current-context": "walkme-dic-dev",
    }))
    path.chmod(0o600)
    return path


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ControlPlaneError(f"{self.name} exited with {self.process.returncode}; last lines of {self.log}:\n"
                                    + "\n".join(self.log.read_text(errors="replace").splitlines()[-20:]))

    def stop(self, grace: float = 10) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class ControlPlane:
    """``with ControlPlane(workdir) as cp:`` — a started control plane; ``cp.admin_kubeconfig`` reaches it."""

    workdir: Path
    bin_dir: Path = field(default_factory=ensure_built)
    components: list[Component] = field(default_factory=list)
    # The controller manager's client to the apiserver (--kube-api-qps; burst twice that); None: its default,
    # 20 requests/s, at which its Job controller alone needs ~600 s for 2,000 Jobs (README, Benchmarks).
    controller_manager_qps: int | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki_dir = self.workdir / "pki"
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.authority = Authority(self.pki_dir)
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"
        self.audit_log = self.workdir / "audit.log"

    @property
    def ca(self) -> Path:
        return self.authority.cert

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def kubeconfig(self, name: str, common_name: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a client-certificate user (``common_name`` in ``groups``)."""
        return write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.url, self.ca, common_name,
                                self.authority.issue(name, common_name, groups))

    def node_credentials(self, node: str = NODE_NAME) -> Path:
        """A kubeconfig for the node agent: ``system:node:<node>`` in ``system:nodes`` (Node authorizer)."""
        return self.kubeconfig(f"node-{node}", f"system:node:{node}", ("system:nodes",))

    def start(self) -> None:
        pki = self.pki_dir
        serving = self.authority.issue("apiserver", "kube-apiserver", client=False, hosts=(
            "127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"))
        kubelet_client = self.authority.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                              ("system:masters",))
        service_accounts = signing_key(pki)
        audit_policy = self.workdir / "audit-policy.yaml"
        audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        write_kubeconfig(self.admin_kubeconfig, self.url, self.ca, ADMIN_USER,
                         self.authority.issue("admin", ADMIN_USER, ("system:masters",)))
        controller_manager = self.kubeconfig("controller-manager", "system:kube-controller-manager")
        scheduler = self.kubeconfig("scheduler", "system:kube-scheduler")
        etcd_port, peer_port = free_port(), free_port()
        etcd_dir = self.workdir / "etcd"
        binary = self.bin_dir
        logs = self.workdir
        self.components = [
            Component("etcd", [
                str(binary / "etcd"), "--name=default", f"--data-dir={etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync", "--log-level=warn",
            ], logs / "etcd.log"),
            Component("kube-apiserver", [
                str(binary / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
                f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca}",
                "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={self.url}", f"--service-account-key-file={service_accounts.cert}",
                f"--service-account-signing-key-file={service_accounts.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--endpoint-reconciler-type=none",
                f"--kubelet-client-certificate={kubelet_client.cert}", f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP", "--profiling=false",
                f"--audit-policy-file={audit_policy}", f"--audit-log-path={self.audit_log}",
                f"--cert-dir={pki}",
            ], logs / "kube-apiserver.log"),
            Component("kube-controller-manager", [
                str(binary / "kube-controller-manager"),
                f"--kubeconfig={controller_manager}", f"--authentication-kubeconfig={controller_manager}",
                f"--authorization-kubeconfig={controller_manager}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={pki / 'kcm'}",
                f"--service-account-private-key-file={service_accounts.key}", f"--root-ca-file={self.ca}",
                f"--cluster-signing-cert-file={self.ca}", f"--cluster-signing-key-file={self.authority.pair.key}",
                "--use-service-account-credentials=true", "--leader-elect=false", "--profiling=false",
                *self._controller_manager_client(),
            ], logs / "kube-controller-manager.log"),
            Component("kube-scheduler", [
                str(binary / "kube-scheduler"),
                f"--kubeconfig={scheduler}", f"--authentication-kubeconfig={scheduler}",
                f"--authorization-kubeconfig={scheduler}",
                "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={pki / 'scheduler'}",
                "--leader-elect=false", "--profiling=false",
            ], logs / "kube-scheduler.log"),
        ]
        etcd, apiserver, *controllers = self.components
        etcd.start()
        apiserver.start()
        self._wait(lambda: self._get("/readyz") == 200, "kube-apiserver /readyz", apiserver, etcd)
        for component in controllers:
            component.start()
        self._wait(lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
                   "the controller manager's default ServiceAccount", *self.components)

    def _controller_manager_client(self) -> list[str]:
        qps = self.controller_manager_qps
        return [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"] if qps else []

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()

    def version(self) -> dict[str, str]:
        """The apiserver's /version (gitVersion, goVersion, platform…)."""
        with self._open("/version") as answer:
            return json.load(answer)

    def metrics(self) -> str:
        """The apiserver's own /metrics (Prometheus text), read as the admin."""
        with self._open("/metrics") as answer:
            return answer.read().decode()

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        admin = self.pki_dir / "admin"
        context.load_cert_chain(f"{admin}.crt", f"{admin}.key")
        return context

    def _open(self, path: str) -> http.client.HTTPResponse:
        return urllib.request.urlopen(self.url + path, context=self._context(), timeout=5)

    def _get(self, path: str) -> int:
        try:
            with self._open(path) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    @staticmethod
    def _wait(ready: object, what: str, *watched: Component, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for component in watched:
                component.check()
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.25)
        raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {watched[0].log.parent}")
