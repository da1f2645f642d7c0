"""README's kubectl tour, run verbatim with the real kubectl (the control plane's own build) and a real
helm against `bash scripts/demo.sh --keep-running`: the real control plane, the chart installed by helm,
the operator in-cluster on the node agent.

The commands are read from the README block after the ``kubectl-tour`` marker, so README cannot
show a command this test does not run: each line needs an expectation below, and every expectation
must be used. README may mention kubectl elsewhere only with verbs the tour runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = "<!-- kubectl-tour:"


@dataclass
class Ran:
    command: str
    code: int
    out: str
    err: str


Check = Callable[[Ran, Callable[[str], Ran]], None]


def tour_commands(text: str) -> list[str]:
    """The lines of the first fenced block after the marker, without trailing `# comments`."""
    after = text[text.index(MARKER):]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block, "README: no ```bash block after the kubectl-tour marker"
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines() if line.strip()]


def code_verbs(text: str) -> set[str]:
    """kubectl verbs README shows in code (fenced blocks and `inline` spans)."""
    code = " ".join(re.findall(r"```.*?```", text, re.S) + re.findall(r"`[^`\n]+`", text))
    return set(re.findall(r"\bkubectl ([a-z-]+)", code))


def ok(*needles: str) -> Check:
    def check(ran: Ran, _: Callable[[str], Ran]) -> None:
        assert ran.code == 0, f"{ran.command}\n{ran.err}"
        for needle in needles:
            assert needle in ran.out, f"{ran.command}: {needle!r} not in\n{ran.out}"
    return check


def refused(*needles: str) -> Check:
    def check(ran: Ran, _: Callable[[str], Ran]) -> None:
        assert ran.code != 0, f"{ran.command} was accepted:\n{ran.out}"
        for needle in needles:
            assert needle in ran.err, f"{ran.command}: {needle!r} not in\n{ran.err}"
    return check


def sync_output(ran: Ran, _: Callable[[str], Ran]) -> None:
    assert ran.code == 0, ran.err
    lines = [json.loads(line) for line in ran.out.splitlines() if line.startswith("{")]
    assert lines and lines[0]["phase"] == "start" and lines[0]["integration"] == "walkme-demo/hr-users-to-walkme"
    assert lines[-1]["phase"] == "done" and lines[-1]["result"] == "Succeeded" and lines[-1]["rowsWritten"] == 4


def stored_as(said: str, name: str, field: str, value: str) -> Check:
    """The command said ``said`` and Integration ``name`` now has ``value`` at ``field``."""
    def check(ran: Ran, kubectl: Callable[[str], Ran]) -> None:
        ok(said)(ran, kubectl)
        after = kubectl(f"kubectl get wmint {name} -n walkme-demo -o jsonpath='{{{field}}}'")
        assert after.out == value, f"{name} {field}: {after.out!r} after {ran.command}"
    return check


def namespace_emptied(ran: Ran, kubectl: Callable[[str], Ran]) -> None:
    ok('namespace "scratch" deleted')(ran, kubectl)
    assert "scratch" not in kubectl("kubectl get secrets -A").out


def server_side_applied(ran: Ran, kubectl: Callable[[str], Ran]) -> None:
    ok("integration.integrations.walkme.io/walkme-users-to-lake serverside-applied")(ran, kubectl)
    stored = json.loads(kubectl("kubectl get wmint walkme-users-to-lake -n walkme-demo -o json").out)
    assert stored["spec"]["timeZone"] == "Europe/Berlin" and stored["spec"]["suspend"] is False


def dry_run_deleted(ran: Ran, kubectl: Callable[[str], Ran]) -> None:
    ok('"hr-users-to-walkme" deleted from walkme-demo namespace (server dry run)')(ran, kubectl)
    assert kubectl("kubectl get wmint hr-users-to-walkme -n walkme-demo").code == 0, "a dry run deletes nothing"


def operator_running(ran: Ran, kubectl: Callable[[str], Ran]) -> None:
    """The chart's two replicas are up: the Deployment 2/2, each pod Running and ready."""
    ok()(ran, kubectl)
    rows = [line.split() for line in ran.out.splitlines() if line.strip()]
    assert ["deployment.apps/walkme-dic", "2/2", "2", "2"] in [row[:4] for row in rows], ran.out
    pods = [row for row in rows if row[0].startswith("pod/walkme-dic-")]
    assert len(pods) == 2 and all(row[1:3] == ["1/1", "Running"] for row in pods), ran.out


# (pattern the README line must match, what its result must show)
EXPECTATIONS: list[tuple[str, Check]] = [
    (r"^helm status walkme-dic -n walkme-dic$",
     ok("NAME: walkme-dic", "STATUS: deployed", "REVISION: 1", "==> v1/Deployment", "==> v1/PodDisruptionBudget",
        "walkme-dic-metrics", "ClusterRole/walkme-dic")),
    (r"^kubectl get deploy,pods -n walkme-dic$", operator_running),
    (r"^kubectl logs deploy/walkme-dic -n walkme-dic$",
     ok('"message": "leader election: ', "Lease walkme-dic/walkme-dic-operator")),
    (r"^kubectl get ns,secrets,jobs,pods -n walkme-demo$",
     ok("namespace/walkme-demo", "Active", "secret/demo-walkme-api", "Opaque", "job.batch/hr-users-to-walkme-",
        "Complete", "pod/walkme-users-to-lake-", "Completed")),
    (r"^kubectl get wmconn,wmint -n walkme-demo$",
     ok("connection.integrations.walkme.io/data-lake", "integration.integrations.walkme.io/hr-users-to-walkme",
        "True")),
    (r"^kubectl get events -n walkme-demo$", ok("RunSucceeded", "Probed", "hr-users-to-walkme")),
    (r"^kubectl describe wmint hr-users-to-walkme ", ok("Connection Ref:", "RunSucceeded", "Events:")),
    (r"^kubectl explain integration\.spec\.connectionRef$",
     ok("KIND:       Integration", "FIELD: connectionRef <Object>", "Cannot change after")),
    (r"^kubectl logs -n walkme-demo job/", sync_output),
    (r"^kubectl apply -f examples/demo/20-inbound-users\.yaml$",
     ok("integration.integrations.walkme.io/hr-users-to-walkme configured")),
    (r"^kubectl diff -f examples/demo/20-inbound-users\.yaml$", ok()),
    (r"^kubectl patch wmint hr-users-to-walkme -n walkme-demo --type=json ",
     stored_as("integration.integrations.walkme.io/hr-users-to-walkme patched", "hr-users-to-walkme",
               ".spec.maxRejectedPercent", "20")),
    (r"^kubectl label wmint hr-users-to-walkme -n walkme-demo team=hr$", ok("labeled")),
    (r"^kubectl delete wmint hr-users-to-walkme -n walkme-demo --dry-run=server$", dry_run_deleted),
    (r"^sed .*maxRejectedPercents.* \| kubectl apply -f -$",
     refused('strict decoding error: unknown field "spec.maxRejectedPercents"')),
    (r"^kubectl patch wmint hr-users-to-walkme .*connectionRef",
     refused('The Integration "hr-users-to-walkme" is invalid: spec.connectionRef: Invalid value: '
             "connectionRef cannot be changed after creation; create a new Integration")),
    (r"^kubectl apply --server-side -f examples/demo/30-outbound-users\.yaml$",
     refused('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply"', ".spec.mapping.fields")),
    (r"^kubectl apply --server-side --force-conflicts -f examples/demo/30-outbound-users\.yaml$",
     server_side_applied),
    (r"kubectl edit wmint walkme-users-to-lake ",
     stored_as("integration.integrations.walkme.io/walkme-users-to-lake edited", "walkme-users-to-lake",
               ".spec.suspend", "true")),
    (r"^kubectl annotate wmint hr-users-to-walkme .*requested-at=", ok("annotated")),
    (r"^kubectl wait --for=condition=Ready wmint/hr-users-to-walkme ", ok("condition met")),
    (r"^kubectl create namespace scratch$", ok("namespace/scratch created")),
    (r"^kubectl create secret generic api-key -n scratch ", ok("secret/api-key created")),
    (r"^kubectl delete namespace scratch$", namespace_emptied),
    (r"^kubectl delete wmint walkme-users-to-lake -n walkme-demo$",
     ok('integration.integrations.walkme.io "walkme-users-to-lake" deleted from walkme-demo namespace')),
]


def test_every_tour_line_has_exactly_one_expectation_and_every_expectation_a_line() -> None:
    commands = tour_commands(README.read_text())
    for command in commands:
        matching = [pattern for pattern, _ in EXPECTATIONS if re.search(pattern, command)]
        assert len(matching) == 1, f"README tour line {command!r} matches expectations {matching}"
    unused = [p for p, _ in EXPECTATIONS if not any(re.search(p, c) for c in commands)]
    assert not unused, f"expectations for lines README no longer shows: {unused}"


def test_readme_shows_only_kubectl_verbs_the_tour_runs() -> None:
    text = README.read_text()
    toured = {verb for command in tour_commands(text) for verb in re.findall(r"\bkubectl ([a-z-]+)", command)}
    assert code_verbs(text) - toured == set(), "README shows kubectl verbs the tour does not run"


READY_LINE = "Everything stays up."


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Path]:
    """The demo with --keep-running as `scripts/demo.sh` starts it; yields the kubeconfig it writes."""
    kubeconfig = tmp_path / "kubeconfig"
    log_path = tmp_path / "demo.log"
    log = log_path.open("w")
    process = subprocess.Popen([sys.executable, "-m", "walkme_dic_dev.demo", "--keep-running",
                                "--kubeconfig", str(kubeconfig)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while READY_LINE not in log_path.read_text():
            assert process.poll() is None, f"the demo exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"the demo was not up after 300s:\n{log_path.read_text()}"
            time.sleep(0.5)
        assert f"export KUBECONFIG={kubeconfig} " in log_path.read_text()
        yield kubeconfig
    finally:
        process.terminate()  # the demo shuts down cleanly on SIGTERM
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            log.close()
        assert code == 143, f"the demo did not stop cleanly ({code}):\n{log_path.read_text()}"
    assert not kubeconfig.exists(), "the demo left a kubeconfig of a stopped cluster behind"


def test_kubectl_tour_from_readme(demo: Path, kubectl_binary: Path, helm_binary: Path, tmp_path: Path) -> None:
    tools = tmp_path / "bin"  # exactly these two: helm's folder also holds an older kubectl
    tools.mkdir()
    for binary in (kubectl_binary, helm_binary):
        (tools / binary.name).symlink_to(binary)
    env = {**os.environ, "KUBECONFIG": str(demo), "KUBECACHEDIR": str(tmp_path / "kube-cache"),
           "HELM_CACHE_HOME": str(tmp_path / "helm-cache"), "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
           "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}

    def kubectl(command: str) -> Ran:
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        return Ran(command, done.returncode, done.stdout, done.stderr)

    for command in tour_commands(README.read_text()):
        check = next(check for pattern, check in EXPECTATIONS if re.search(pattern, command))
        check(kubectl(command), kubectl)
