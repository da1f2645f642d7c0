"""SFTP through the whole loop: operator probe → Ready (TYPE sftp in kubectl get) → Jobs running the real sync
against OpenSSH in both directions → a replaced host key turns the Connection Ready=False, HostKeyRejected."""

from __future__ import annotations

import asyncio
import csv
import io
import os
from pathlib import Path
from typing import Any

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.sshd import Sshd, keygen
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import API, NS, OperatorHandle, condition, connection, eventually, integration, secret
from tests.operator.test_operator import finished_runs, ready
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent


def sftp_connection(sshd: Sshd, folder: Path, **block: Any) -> dict[str, Any]:
    return connection("files", {"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username,
                                         "path": str(folder), "hostKeys": sshd.known_hosts.splitlines(),
                                         "auth": {"secretRef": {"name": "sftp"}}, **block}})


async def kubectl(binary: Path, kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    process = await asyncio.create_subprocess_exec(str(binary), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_sftp_both_directions_and_a_replaced_host_key(
    cluster: Cluster, operator: OperatorHandle, node: NodeAgent, backends: dict, walkme: FakeWalkMe,
    sshd: Sshd, kubectl_binary: Path, tmp_path: Path,
) -> None:
    folder = sshd.folder()
    (folder / "incoming").mkdir()
    (folder / "incoming" / "users.csv").write_bytes(b"id,plan,active\nu1,gold,true\nu2,silver,false\n")
    for obj in backends["manifests"]:
        await cluster.apply(obj)
    await cluster.apply(secret("sftp", {"privateKey": sshd.keys["ecdsa"]}))
    await cluster.apply(sftp_connection(sshd, folder))
    files = await ready(cluster, "Connection", "files")
    assert condition(files, "Ready")["reason"] == "Probed" and files["status"]["provider"] == "sftp"
    assert "wrote and deleted a probe file" in condition(files, "Ready")["message"]
    table = await kubectl(kubectl_binary, cluster.write_kubeconfig(tmp_path / "kubeconfig"),
                          "get", "wmconn", "files", "-n", NS)
    assert table.splitlines()[1].split()[:4] == ["files", "sftp", "True", "Probed"], table

    await ready(cluster, "Connection", "walkme")
    await cluster.apply(integration("from-sftp", connectionRef={"name": "files"},
                                    source={"file": {"path": "incoming/users.csv"}},
                                    mapping={"key": {"source": "id", "destination": "uuid"},
                                             "fields": [{"source": "plan", "destination": "plan"}],
                                             "activeField": "active"}))
    walkme.seed("users", [{"userId": "w1", "email": "w1@acme.example", "updatedAt": "2026-11-20T08:00:00Z"}])
    await cluster.apply(integration("to-sftp", connectionRef={"name": "files"}, direction="Outbound",
                                    source={"walkme": {"dataset": "users"}},
                                    destination={"file": {"path": "outgoing/users-{runId}.csv"}},
                                    mapping={"key": {"source": "userId", "destination": "user_id"},
                                             "fields": [{"source": "email", "destination": "email"}]}))
    inbound = (await finished_runs(cluster, "from-sftp"))["status"]["runs"][0]
    outbound = (await finished_runs(cluster, "to-sftp"))["status"]["runs"][0]
    assert (inbound["result"], inbound["rowsWritten"]) == ("Succeeded", 2), inbound
    users = walkme.users(WALKME_TOKEN)
    assert set(users) == {"u1", "u2"} and users["u2"]["plan"] == "silver", users
    assert (outbound["result"], outbound["rowsWritten"]) == ("Succeeded", 1), outbound
    exported = list((folder / "outgoing").iterdir())
    assert len(exported) == 1 and not exported[0].name.startswith("."), exported
    assert list(csv.DictReader(io.StringIO(exported[0].read_text()))) == [{"user_id": "w1",
                                                                          "email": "w1@acme.example"}]

    keygen(tmp_path / "old", "-t", "ed25519")
    kind, blob = (tmp_path / "old.pub").read_text().split()[:2]
    await cluster.patch(API, "Connection", NS, "files",
                        {"spec": {"sftp": {"hostKeys": [f"[{sshd.host}]:{sshd.port} {kind} {blob}"]}}})

    async def refused() -> dict[str, Any] | None:
        cond = condition(await cluster.get(API, "Connection", NS, "files"), "Ready")
        return cond if cond.get("reason") == "HostKeyRejected" else None

    cond = await eventually(refused)
    assert cond["status"] == "False" and "CHANGED" in cond["message"] and "ssh-keyscan" in cond["message"]
