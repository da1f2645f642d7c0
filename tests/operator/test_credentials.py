"""The operator against a TLS dev API that checks credentials: every way a cluster hands them out.

Each test loads credentials the way `walkme-dic operator` does (`ClusterAccess.discover`, i.e. the
`kubernetes` package's loaders), runs the real operator (kopf and our writes) and shows a run
starting and its status being written. The API refuses everything but the credentials each test
names, so a credential that is not sent, not refreshed or sent to an unverified server fails.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.pki import Pki
from tests.operator.helpers import API, NS, OperatorHandle, integration
from tests.operator.test_operator import REQUESTED_AT, apply_connections, finished_runs, jobs
from walkme_dic.devcluster.auth import ApiSecurity
from walkme_dic_dev.cluster import Cluster
from walkme_dic.kube import ClusterAccess, KubeClient


@pytest.fixture
def security(pki: Pki) -> ApiSecurity:
    return ApiSecurity(cert_path=str(pki.server.cert), key_path=str(pki.server.key), ca_path=str(pki.ca))


@pytest.fixture
async def cluster(security: ApiSecurity) -> AsyncIterator[Cluster]:
    """The dev API over TLS, letting in only the dev token (the kubelet's) and what a test adds."""
    async with Cluster(security=security) as dev:
        yield dev


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


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


async def test_ca_data_and_token(cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path,
                                 node: object, backends: dict) -> None:
    security.tokens.add("ca-data-token")
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, {"certificate-authority-data": b64(pki.ca)},
                              {"token": "ca-data-token"})
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_client_certificate_data(cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path,
                                       node: object, backends: dict) -> None:
    client = pki.client("operator-by-cert-data")
    security.client_names.add("operator-by-cert-data")
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, {"certificate-authority-data": b64(pki.ca)},
                              {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)})
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_client_certificate_files_relative_to_the_kubeconfig(
    cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kubeadm's admin.conf shape with files; relative paths are read from the kubeconfig's folder."""
    client = pki.client("operator-by-cert-file")
    security.client_names.add("operator-by-cert-file")
    folder = tmp_path / "kube"
    folder.mkdir()
    for source, target in ((pki.ca, "ca.crt"), (client.cert, "client.crt"), (client.key, "client.key")):
        (folder / target).write_bytes(source.read_bytes())
    config = write_kubeconfig(folder / "config", cluster.url, {"certificate-authority": "ca.crt"},
                              {"client-certificate": "client.crt", "client-key": "client.key"})
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's folder
    assert_one_run(await run_with(ClusterAccess.discover(str(config)), cluster, backends))


async def test_token_file_and_a_kubeconfig_list_with_context(
    cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$KUBECONFIG names two files; the context asked for lives in the second, its tokenFile beside it."""
    security.tokens.add("from-token-file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "token").write_text("from-token-file\n")
    (tmp_path / "b" / "ca.crt").write_bytes(pki.ca.read_bytes())
    first = write_kubeconfig(tmp_path / "a" / "config", "https://127.0.0.1:1", {}, {"token": "elsewhere"}, "other")
    second = write_kubeconfig(tmp_path / "b" / "config", cluster.url, {"certificate-authority": "ca.crt"},
                              {"tokenFile": "token"}, "dev")
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    assert_one_run(await run_with(ClusterAccess.discover(context="dev"), cluster, backends))


EXEC_PLUGIN = """
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
issued = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(issued))
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=float(sys.argv[2]))
status = {"token": f"exec-token-{issued}", "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": status}))
"""


async def test_exec_plugin_credential_is_renewed_before_it_expires(
    cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path, node: object, backends: dict,
) -> None:
    """Like `aws eks get-token`: each run prints a new token valid for 6 s; the API stops taking the first."""
    plugin, counter = tmp_path / "get-token.py", tmp_path / "issued"
    plugin.write_text(EXEC_PLUGIN)
    security.tokens.update(f"exec-token-{n}" for n in range(1, 100))
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, {"certificate-authority-data": b64(pki.ca)}, {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                 "args": [str(plugin), str(counter), "6"], "interactiveMode": "Never"}})
    operator = OperatorHandle(cluster, access=ClusterAccess.discover(str(config)))
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration("first"))
        await finished_runs(cluster, "first")
        await asyncio.sleep(7)
        security.tokens.discard("exec-token-1")  # expired: the API no longer takes it
        await cluster.apply(integration("second"))
        assert_one_run(await finished_runs(cluster, "second"))
    finally:
        await operator.stop()
    assert int(counter.read_text()) >= 2
    assert security.refused == 0  # renewed before expiry, not after a 401


def in_cluster_layout(folder: Path, pki: Pki, token: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.crt").write_bytes(pki.ca.read_bytes())
    (folder / "namespace").write_text("walkme-dic\n")
    (folder / "token").write_text(token)
    return folder


async def test_in_cluster_token_rotation_needs_no_restart(
    cluster: Cluster, security: ApiSecurity, pki: Pki, tmp_path: Path, node: object, backends: dict,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The kubelet writes a new projected token; the API then refuses the old one. Runs go on."""
    folder = in_cluster_layout(tmp_path / "serviceaccount", pki, "sa-token-1")
    security.tokens.add("sa-token-1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(cluster.url.rsplit(":", 1)[1]))
    operator = OperatorHandle(cluster, access=ClusterAccess.discover(service_account_dir=folder))
    await operator.start()
    try:
        await apply_connections(cluster, backends)
        await cluster.apply(integration("before"))
        assert_one_run(await finished_runs(cluster, "before"))
        (folder / "token").write_text("sa-token-2")
        security.tokens.discard("sa-token-1")
        security.tokens.add("sa-token-2")
        await cluster.apply(integration("after"))
        assert_one_run(await finished_runs(cluster, "after"))
        await cluster.patch(API, "Integration", NS, "before", {"metadata": {"annotations": {REQUESTED_AT: "rotated"}}})
        obj = await finished_runs(cluster, "before", count=2)
        assert [r["result"] for r in obj["status"]["runs"]] == ["Succeeded", "Succeeded"]
    finally:
        await operator.stop()
    assert not [r for r in caplog.records if "refused the credentials" in r.getMessage()]
    assert len(await jobs(cluster)) == 3


async def test_unverified_server_is_not_trusted(cluster: Cluster, security: ApiSecurity, tmp_path: Path) -> None:
    """Without the CA the server certificate is rejected: the CA in a kubeconfig is really used."""
    security.tokens.add("good-token")
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, {}, {"token": "good-token"})
    client = KubeClient(ClusterAccess.discover(str(config)))
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await client.request("GET", "/api/v1/namespaces")
    finally:
        await client.close()


async def test_refused_credentials_are_named_once_without_the_token(
    cluster: Cluster, pki: Pki, tmp_path: Path,
) -> None:
    """`walkme-dic operator` with a token the API refuses: one line naming the server and the method, then exit."""
    secret_token = "refused-token-0123456789abcdef"
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url, {"certificate-authority-data": b64(pki.ca)},
                              {"token": secret_token})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "walkme_dic", "operator", "--kubeconfig", str(config), "--metrics-port", "0",
        "--liveness", "", "--log-format", "plain", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    except TimeoutError:
        process.terminate()
        _, stderr = await process.communicate()
    output = stderr.decode()
    assert process.returncode == 1  # kopf stops with a LoginError; the pod restarts and loads again
    named = [line for line in output.splitlines() if "refused the credentials" in line]
    assert len(named) == 1, output[-3000:]
    assert cluster.url in named[0] and "from token" in named[0]
    assert secret_token not in output
    assert base64.b64encode(secret_token.encode()).decode() not in output

