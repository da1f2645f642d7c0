"""The pod's runtime contract without Docker: uid 65532, a read-only root filesystem, only /tmp writable.

The chart runs the operator with ``runAsUser: 65532`` and ``readOnlyRootFilesystem: true`` and an
emptyDir at /tmp; sync Jobs get the same. Here bubblewrap gives both processes that world on this
machine: everything mounted read-only, a writable /tmp (and, for the sync, its pod's own volume
folders, as a kubelet mounts them), then ``setpriv`` drops to the real uid/gid 65532 with no
capabilities. An Integration then runs end to end — the operator reconciles and writes status, the
real `walkme-dic sync` reads S3 and writes to WalkMe — so whatever either would write outside /tmp
(.pyc files, caches, state) would fail the run instead of passing silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_flows import inbound, put
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.walkme import WALKME_TOKEN
from tests.operator.helpers import NS
from tests.operator.test_operator import apply_connections, finished_runs
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent, default_command

UID = 65532
REPO = Path(__file__).resolve().parents[2]


def bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        pytest.fail("bubblewrap is missing: apt-get update && apt-get install -y bubblewrap "
                    "(scripts/test.sh installs it when it runs as root)")
    return found


def _hidden_ancestor(path: Path) -> Path | None:
    """The highest folder above ``path`` that uid 65532 cannot enter (e.g. /root, mode 700)."""
    for ancestor in reversed(path.parents):
        if ancestor != Path("/") and not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor
    return None


def own(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, UID, UID)


def sandboxed(argv: list[str], tmp: Path, writable: tuple[Path, ...] = ()) -> list[str]:
    """``argv`` as uid 65532 with / read-only, ``tmp`` as its /tmp and ``writable`` folders at their own paths."""
    options = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for needed in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO}:
        hidden = _hidden_ancestor(needed)
        if hidden is not None:  # the interpreter under /root (700): show only its tree there, read-only
            shown = hidden / needed.relative_to(hidden).parts[0]
            options += ["--perms", "0755", "--tmpfs", str(hidden), "--ro-bind", str(shown), str(shown),
                        "--remount-ro", str(hidden)]
    for folder in writable:  # its mount point inside our /tmp: made here, so that 65532 may pass through
        if folder.is_relative_to("/tmp"):
            (tmp / folder.relative_to("/tmp")).mkdir(parents=True, exist_ok=True)
    under_tmp = [path for path in (REPO, Path(sys.prefix).resolve()) if path.is_relative_to("/tmp")]
    for path in under_tmp:  # a checkout under /tmp (CI's clone may be there): shown again, read-only
        (tmp / path.relative_to("/tmp")).mkdir(parents=True, exist_ok=True)
    own(tmp)
    options += ["--bind", str(tmp), "/tmp"]
    for path in under_tmp:
        options += ["--ro-bind", str(path), str(path)]
    for folder in writable:
        own(folder)
        options += ["--bind", str(folder), str(folder)]
    options += ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--die-with-parent"]
    whoami = 'id -u > "$0"; exec "$@"'
    return [bwrap(), *options, "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "sh", "-c", whoami, "/tmp/whoami", *argv]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def sync_tmp(tmp_path: Path) -> Path:
    """What each sandboxed sync sees as /tmp, kept after the run for inspection."""
    return Path(tempfile.mkdtemp(prefix="sync-tmp-", dir=tmp_path))


@pytest.fixture
async def kubelet(cluster: Cluster, sync_tmp: Path) -> AsyncIterator[Kubelet]:
    """The dev kubelet, running the real `walkme-dic sync` of each Job in the sandbox."""
    def resolve(argv: list[str]) -> list[str]:
        pod_root = Path(argv[argv.index("--result") + 1]).parent  # the pod's volumes and termination log
        return sandboxed(default_command(argv), sync_tmp, writable=(pod_root,))

    async with Kubelet(cluster.client, command_resolver=resolve, relist_seconds=0.1,
                       extra_env={"AWS_EC2_METADATA_DISABLED": "true"}) as runner:
        yield runner


@pytest.fixture
def operator_tmp(tmp_path: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="operator-tmp-", dir=tmp_path))


@pytest.fixture
def sandboxed_operator(cluster: Cluster, operator_tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    cluster.write_kubeconfig(operator_tmp / "kubeconfig")
    with (operator_tmp.parent / "operator.log").open("wb") as log:
        process = subprocess.Popen(
            sandboxed([sys.executable, "-m", "walkme_dic", "operator", "--kubeconfig", "/tmp/kubeconfig",
                       "--metrics-port", "0", "--liveness", "", "--resync", "1", "--log-format", "plain"],
                      operator_tmp),
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    yield process
    # The whole group: setpriv's change of user clears the death signal bwrap sets, so the operator would
    # outlive a bwrap that alone was stopped.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_the_sandbox_is_what_the_pod_gets(tmp_path: Path) -> None:
    """Uid 65532, no write outside /tmp (the repository, the interpreter, /var/tmp), /tmp writable."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    probe = ("import os, sys\n"
             "for path in sys.argv[1:]:\n"
             "    try:\n"
             "        open(path, 'w').close(); print('wrote', path)\n"
             "    except OSError as error:\n"
             "        print('refused', path, error.strerror)\n")
    targets = [str(REPO / "probe"), str(Path(sys.prefix) / "probe"), "/var/tmp/probe", "/tmp/probe"]
    done = subprocess.run(sandboxed([sys.executable, "-c", probe, *targets], tmp), capture_output=True,
                          text=True, check=True)
    assert (tmp / "whoami").read_text().strip() == str(UID)
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["refused", "refused", "refused", "wrote"], lines
    assert all("Read-only file system" in line for line in lines[:3])
    assert (tmp / "probe").exists() and (tmp / "probe").stat().st_uid == UID


async def test_operator_and_sync_run_as_65532_with_only_tmp_writable(
    cluster: Cluster, node: NodeAgent, backends: dict, walkme: FakeWalkMe, moto_server: str,
    sandboxed_operator: subprocess.Popen[bytes], operator_tmp: Path, sync_tmp: Path,
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
    assert sandboxed_operator.poll() is None
    assert (operator_tmp / "whoami").read_text().strip() == str(UID)
    assert (sync_tmp / "whoami").read_text().strip() == str(UID)
    for folder in (operator_tmp, sync_tmp):
        assert not [f for f in files_under(folder) if f.endswith(".pyc") or "cache" in f.lower()], \
            files_under(folder)
