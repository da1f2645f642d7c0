"""The pod's runtime contract without Docker: uid 65532, a read-only root filesystem, only /tmp writable.

The chart runs the operator with ``runAsUser: 65532`` and ``readOnlyRootFilesystem: true`` and an
emptyDir at /tmp; sync Jobs get the same. The node agent runs every container that way (bubblewrap: the
host's root read-only, the Pod's volumes at their mount paths; ``setpriv`` drops to the Pod's uid with no
capabilities), so whatever the real `walkme-dic sync` would write outside /tmp (.pyc files, caches,
state) fails the run instead of passing silently. The first test shows the sandbox is that world; the
second runs an Integration end to end and reads what the sync left in its /tmp.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.test_flows import inbound, put
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import NS, OperatorHandle
from tests.operator.test_operator import apply_connections, finished_runs
from walkme_dic_dev import sandbox
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

UID = 65532
REPO = Path(__file__).resolve().parents[2]
PROBE = ("import os, sys\n"
         "print('uid', os.getuid(), os.getgid())\n"
         "for path in sys.argv[1:]:\n"
         "    try:\n"
         "        open(path, 'w').close(); print('wrote', path)\n"
         "    except OSError as error:\n"
         "        print('refused', path, error.strerror)\n")


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_sandbox_is_what_the_pod_gets(tmp_path: Path) -> None:
    """Uid 65532, no write outside /tmp (the repository, the interpreter, /var/tmp), /tmp writable."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    argv = sandbox.argv([sys.executable, "-c", PROBE, str(REPO / "probe"), str(Path(sys.prefix) / "probe"),
                         "/var/tmp/probe", "/tmp/probe"],
                        [sandbox.Mount(tmp, "/tmp", read_only=False)], sandbox.Identity(UID, UID))
    lines = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] == f"uid {UID} {UID}"
    assert [line.split()[0] for line in lines[1:]] == ["refused", "refused", "refused", "wrote"], lines
    assert all("Read-only file system" in line for line in lines[1:4])
    assert (tmp / "probe").stat().st_uid == UID


async def test_sync_runs_as_65532_and_writes_only_its_tmp(
    cluster: Cluster, node: NodeAgent, operator: OperatorHandle, backends: dict, walkme: FakeWalkMe,
    moto_server: str,
) -> None:
    put(moto_server, backends["bucket"], "users.csv", b"id,plan,since,active\nu1,gold,2024-01-01,true\n")
    await apply_connections(cluster, backends)
    await cluster.apply(inbound())
    obj = await finished_runs(cluster, "hr")
    run = obj["status"]["runs"][0]
    assert (run["result"], run["rowsWritten"]) == ("Succeeded", 1), run
    assert set(walkme.users(WALKME_TOKEN)) == {"u1"}
    (job,) = await cluster.list("batch/v1", "Job", NS)
    assert (job["status"].get("succeeded"), job["status"].get("failed", 0)) == (1, 0)  # the first attempt
    [pod] = [p for (namespace, _), p in node.pods.items() if namespace == NS]
    sync = pod.containers["sync"]
    assert sync.identity is not None and (sync.identity.uid, sync.identity.gid) == (UID, UID)
    leftovers = files_under(pod.folders["tmp"])
    assert not [f for f in leftovers if f.endswith(".pyc") or "cache" in f.lower()], leftovers
