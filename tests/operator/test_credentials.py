"""The operator's cluster credentials against the real kube-apiserver: every way a cluster hands them out.

The apiserver serves TLS with the control plane's CA and authenticates client certificates (issued by
that CA; the subject's O is the group) and ServiceAccount tokens (TokenRequest); it refuses a token
whose bound object is gone and a certificate past its notAfter. The operator runs as the chart's
ServiceAccount, with the RBAC `helm template` renders, or as a certificate user in a group bound to
the chart's ClusterRole — never as an admin. Each test loads credentials the way `walkme-dic operator`
does (`ClusterAccess.discover`, i.e. the `kubernetes` package's loaders), runs the real operator (kopf
and our writes) and shows a run starting and its status being written.

Refusals are counted with the apiserver's own ``authentication_attempts`` metric (every request it
could not authenticate, i.e. every 401). The apiserver caches a successful token authentication for
10 s (TokenSuccessCacheTTL, no flag), so a revoked token is refused only once that has passed; it checks
a client certificate's validity on every request. Tests wait for a refusal they cause themselves,
outside our client, before they expect the operator to meet one.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.helpers import API, NS, OperatorHandle, eventually, integration
from tests.operator.test_operator import REQUESTED_AT, apply_connections, finished_runs, jobs
from walkme_dic.kube import ClusterAccess, KubeClient
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.controlplane import ControlPlane
from walkme_dic_dev.pki import Authority, Pair

CHART = Path(__file__).resolve().parents[2] / "charts" / "walkme-dic"
OPERATOR_NS = "walkme-dic"
OPERATORS_GROUP = "walkme-dic:operators"  # client-certificate users in this group get the chart's ClusterRole
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass
class OperatorAccount:
    """Who the operator is: the chart's ServiceAccount (tokens) or a member of OPERATORS_GROUP (certificates)."""

    cluster: Cluster
    service_account: str

    async def token(self, bound_to: str) -> str:
        """A TokenRequest token for the ServiceAccount, bound to a new Secret ``bound_to``: deleting it revokes
        the token."""
        secret = await self.cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": bound_to, "namespace": OPERATOR_NS}})
        answer = await self.cluster.client.request(
            "POST", f"/api/v1/namespaces/{OPERATOR_NS}/serviceaccounts/{self.service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
                "expirationSeconds": 3600, "boundObjectRef": {
                    "apiVersion": "v1", "kind": "Secret", "name": bound_to, "uid": secret["metadata"]["uid"]}}})
        return str(answer["status"]["token"])

    async def revoke(self, bound_to: str) -> None:
        await self.cluster.delete("v1", "Secret", OPERATOR_NS, bound_to)

    def certificate(self, name: str, validity: datetime.timedelta = datetime.timedelta(hours=1)) -> Pair:
        return self.cluster.control_plane.authority.issue(name, name, (OPERATORS_GROUP,), validity=validity)


def chart_rbac(helm_binary: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run([str(helm_binary), "template", "dic", str(CHART), "--namespace", OPERATOR_NS],
                              capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] in RBAC_KINDS]


@pytest.fixture
async def account(cluster: Cluster, helm_binary: Path) -> AsyncIterator[OperatorAccount]:
    """The chart's ServiceAccount and RBAC, applied; the certificate group bound to the same ClusterRole."""
    docs = chart_rbac(helm_binary)
    (service_account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    (cluster_role,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"]
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": f"{cluster_role}-by-certificate"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": OPERATORS_GROUP}]})
    for doc in docs:
        await cluster.apply(doc)
    try:
        yield OperatorAccount(cluster, service_account)
    finally:  # the namespaced ones go with the namespaces
        for doc in docs:
            if doc["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
                await cluster.delete(doc["apiVersion"], doc["kind"], "", doc["metadata"]["name"])


def refusals(control_plane: ControlPlane) -> float:
    """Requests the apiserver could not authenticate (each answered 401) since it started."""
    return sum(sample.value for family in text_string_to_metric_families(control_plane.metrics())
               if family.name == "authentication_attempts" for sample in family.samples
               if sample.labels.get("result") != "success")


async def status_for(cluster: Cluster, token: str | None = None, cert: Pair | None = None) -> int:
    """The apiserver's answer to these credentials, asked on a new connection, without our client."""
    context = ssl.create_default_context(cafile=str(cluster.control_plane.ca))
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(f"{cluster.url}/api", ssl=context,
                                                               headers=headers) as answer:
        return answer.status


async def until_refused(cluster: Cluster, token: str | None = None, cert: Pair | None = None) -> None:
    """Wait until the apiserver refuses these credentials: one refusal of our own, counted in `refusals`."""
    async def refused() -> bool:
        return await status_for(cluster, token, cert) == 401

    await eventually(refused, timeout=60, interval=0.5)


def b64(data: str | Path) -> str:
    return base64.b64encode(data.read_bytes() if isinstance(data, Path) else data.encode()).decode()


def write_kubeconfig(path: Path, server: str, cluster: dict[str, Any], user: dict[str, Any],
                     name: str = "tls") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, **cluster}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
    }))
    return path


def project(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` as the kubelet updates a projected volume (and cert-manager's csi-driver its files):
    a new timestamped folder, ``..data`` switched to it in one rename, each name a symlink through ``..data``."""
    version = folder / f"..{time.time_ns()}"
    version.mkdir(parents=True)
    for name, content in files.items():
        (version / name).write_bytes(content)
    switch = folder / "..data_tmp"
    switch.symlink_to(version.name)
    switch.replace(folder / "..data")
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")


def pair_files(pair: Pair) -> dict[str, bytes]:
    return {"client.crt": pair.cert.read_bytes(), "client.key": pair.key.read_bytes()}


async def run_with(access: ClusterAccess, cluster: Cluster, backends: dict, name: str = "users") -> dict:
    """Start the operator with ``access``; an Integration runs once and its status is written."""
    operator = OperatorHandle(cluster, access=access)
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration(name))
        return await finished_runs(cluster, name)
    finally:
        await operator.stop()


def assert_one_run(obj: dict) -> None:
    assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded"]


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused the credentials" in r.getMessage()]


async def test_ca_data_and_token(cluster: Cluster, account: OperatorAccount, tmp_path: Path,
                                 node: object, backends: dict) -> None:
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url,
                              {"certificate-authority-data": b64(cluster.control_plane.ca)},
                              {"token": await account.token("ca-data-token")})
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_client_certificate_data(cluster: Cluster, account: OperatorAccount, tmp_path: Path,
                                       node: object, backends: dict) -> None:
    client = account.certificate("operator-by-cert-data")
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url,
                              {"certificate-authority-data": b64(cluster.control_plane.ca)},
                              {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)})
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_client_certificate_files_relative_to_the_kubeconfig(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kubeadm's admin.conf shape with files; relative paths are read from the kubeconfig's folder."""
    client = account.certificate("operator-by-cert-file")
    folder = tmp_path / "kube"
    folder.mkdir()
    for source, target in ((cluster.control_plane.ca, "ca.crt"), (client.cert, "client.crt"),
                           (client.key, "client.key")):
        (folder / target).write_bytes(source.read_bytes())
    config = write_kubeconfig(folder / "config", cluster.url, {"certificate-authority": "ca.crt"},
                              {"client-certificate": "client.crt", "client-key": "client.key"})
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's folder
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_client_certificate_files_renewed_in_place_before_they_expire(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, node: object, backends: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """cert-manager's csi-driver (or a kubelet's rotation) swaps a new certificate into the same files before
    the old one expires; the apiserver then refuses the old one. The operator moves on without a 401."""
    folder = tmp_path / "kube"
    first = account.certificate("short-lived", datetime.timedelta(seconds=20))
    project(folder, pair_files(first))
    config = write_kubeconfig(folder / "config", cluster.url, {"certificate-authority": str(cluster.control_plane.ca)},
                              {"client-certificate": "client.crt", "client-key": "client.key"})
    before = await asyncio.to_thread(refusals, cluster.control_plane)
    operator = OperatorHandle(cluster, access=ClusterAccess.discover(str(config)))
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration("before"))
        assert_one_run(await finished_runs(cluster, "before"))
        project(folder, pair_files(account.certificate("renewed")))
        await until_refused(cluster, cert=first)  # past its notAfter
        await cluster.apply(integration("after"))
        assert_one_run(await finished_runs(cluster, "after"))
    finally:
        await operator.stop()
    assert await asyncio.to_thread(refusals, cluster.control_plane) == before + 1  # ours, in until_refused
    assert not refused_lines(caplog)


async def test_token_file_and_a_kubeconfig_list_with_context(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$KUBECONFIG names two files; the context asked for lives in the second, its tokenFile beside it."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "token").write_text(await account.token("from-token-file") + "\n")
    (tmp_path / "b" / "ca.crt").write_bytes(cluster.control_plane.ca.read_bytes())
    first = write_kubeconfig(tmp_path / "a" / "config", "https://127.0.0.1:1", {}, {"token": "elsewhere"}, "other")
    second = write_kubeconfig(tmp_path / "b" / "config", cluster.url, {"certificate-authority": "ca.crt"},
                              {"tokenFile": "token"}, "dev")
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    assert_one_run(await run_with(ClusterAccess.discover(context="dev"), cluster, backends))


EXEC_PLUGIN = """
import datetime, json, pathlib, sys
folder, lifetime = pathlib.Path(sys.argv[1]), float(sys.argv[2])
counter = folder / "issued"
issued = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(issued))
prepared = folder / f"{issued}.json"
if not prepared.exists():
    sys.exit(f"no credential number {issued} prepared")
status = json.loads(prepared.read_text())
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime)
status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}))
"""
EXEC_LIFETIME = 6  # seconds the plugin says each credential is good for
PREPARED = 30  # credentials the plugin can hand out: a run every ~5 s for the test's ~30 s, with room


async def prepared_credential(account: OperatorAccount, kind: str,
                              number: int) -> tuple[dict[str, str], dict[str, Any]]:
    """The plugin's ``number``-th ExecCredential status, and how `until_refused` presents it. The first
    certificate really expires right after the plugin says it does; the others stay good."""
    if kind == "token":
        token = await account.token(f"exec-{number}")
        return {"token": token}, {"token": token}
    lifetime = datetime.timedelta(seconds=EXEC_LIFETIME + 1 if number == 1 else 3600)
    pair = account.certificate(f"exec-{number}", lifetime)
    return {"clientCertificateData": pair.cert.read_text(), "clientKeyData": pair.key.read_text()}, {"cert": pair}


@pytest.mark.parametrize("kind", ["token", "client certificate"])
async def test_exec_plugin_credential_is_renewed_before_it_expires(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, node: object, backends: dict, kind: str,
) -> None:
    """Like `aws eks get-token` (tokens) or Pinniped (client certificates): each run of the plugin prints a new
    credential said to be good for 6 s. Then the apiserver stops taking the first: its token's bound Secret is
    deleted, or its certificate expires. Runs go on, and the operator never sent the first after its expiry."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    plugin = tmp_path / "get-credential.py"
    plugin.write_text(EXEC_PLUGIN)
    first: dict[str, Any] = {}
    for number in range(1, PREPARED + 1):
        status, presented = await prepared_credential(account, kind, number)
        (folder / f"{number}.json").write_text(json.dumps(status))
        first = first or presented
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url,
                              {"certificate-authority-data": b64(cluster.control_plane.ca)}, {
                                  "exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                                           "args": [str(plugin), str(folder), str(EXEC_LIFETIME)],
                                           "interactiveMode": "Never"}})
    before = await asyncio.to_thread(refusals, cluster.control_plane)
    operator = OperatorHandle(cluster, access=ClusterAccess.discover(str(config)))
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration("first"))
        await finished_runs(cluster, "first")
        await asyncio.sleep(EXEC_LIFETIME + 1)
        if kind == "token":
            await account.revoke("exec-1")
        await until_refused(cluster, **first)
        await cluster.apply(integration("second"))
        assert_one_run(await finished_runs(cluster, "second"))
    finally:
        await operator.stop()
    assert int((folder / "issued").read_text()) >= 2
    assert await asyncio.to_thread(refusals, cluster.control_plane) == before + 1  # ours: renewed before expiry


async def test_in_cluster_token_rotation_needs_no_restart(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The kubelet projects a new token into the pod's service-account folder; the old one is revoked (its bound
    object is gone) and the apiserver refuses it: the operator's next request gets a 401, reads the token file
    again and retries. Runs go on, and the refusal is not reported as bad credentials."""
    folder = tmp_path / "serviceaccount"

    def project_token(token: str) -> None:
        project(folder, {"ca.crt": cluster.control_plane.ca.read_bytes(), "namespace": OPERATOR_NS.encode(),
                         "token": token.encode()})

    old = await account.token("projected-1")
    project_token(old)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.control_plane.port))
    operator = OperatorHandle(cluster, access=ClusterAccess.discover(service_account_dir=folder))
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration("before"))
        assert_one_run(await finished_runs(cluster, "before"))
        project_token(await account.token("projected-2"))
        before = await asyncio.to_thread(refusals, cluster.control_plane)
        await account.revoke("projected-1")
        await until_refused(cluster, token=old)  # one refusal of the test's own
        await cluster.apply(integration("after"))
        assert_one_run(await finished_runs(cluster, "after"))
        await cluster.patch(API, "Integration", NS, "before", {"metadata": {"annotations": {REQUESTED_AT: "rotated"}}})
        obj = await finished_runs(cluster, "before", count=2)
        assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded", "Succeeded"]
    finally:
        await operator.stop()
    # the operator sent the old token and was refused (it GETs Secret metadata every resync pass, so this may
    # happen before the test's own check as well as after it)
    assert await asyncio.to_thread(refusals, cluster.control_plane) > before + 1
    assert not refused_lines(caplog)
    assert len(await jobs(cluster)) == 3


@pytest.mark.parametrize("trusted", ["system CAs", "another CA"])
async def test_a_server_the_ca_does_not_vouch_for_is_refused(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path, trusted: str,
) -> None:
    """The CA in a kubeconfig is really used: without it, or with another one (of the same name, as every
    kubeadm cluster's CA is called `kubernetes`), the apiserver's certificate is refused before a token is
    sent, with a message naming the server and the reason."""
    ca = {} if trusted == "system CAs" else {"certificate-authority": str(Authority(tmp_path / "other-ca").cert)}
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, ca, {"token": await account.token("good")})
    client = KubeClient(ClusterAccess.discover(str(config)))
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as refused:
            await client.request("GET", "/api/v1/namespaces")
    finally:
        await client.close()
    message = str(refused.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and f"127.0.0.1:{cluster.control_plane.port}" in message


async def test_refused_credentials_are_named_once_without_the_token(
    cluster: Cluster, account: OperatorAccount, tmp_path: Path,
) -> None:
    """`walkme-dic operator` with a revoked token: one line naming the server and the method, then exit."""
    secret_token = await account.token("revoked")
    await account.revoke("revoked")
    await until_refused(cluster, token=secret_token)
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url,
                              {"certificate-authority-data": b64(cluster.control_plane.ca)}, {"token": secret_token})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walkme_dic", "operator", "--kubeconfig", str(config), "--metrics-port", "0",
        "--liveness", "", "--log-format", "plain", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.terminate()
        _, stderr = await process.communicate()
    output = stderr.decode()
    assert process.returncode == 1, output[-3000:]  # kopf stops with a LoginError; the pod restarts and loads again
    named = [line for line in output.splitlines() if "refused the credentials" in line]
    assert len(named) == 1, output[-3000:]
    assert cluster.url in named[0] and "from token" in named[0]
    assert secret_token not in output
    assert b64(secret_token) not in output
