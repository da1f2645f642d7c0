"""Status a person can act on, with the real operator against the dev cluster: waiting for the run
one asked for (README's kubectl recipe run verbatim with the real kubectl, and `walkme-dic run`),
Probing from the first moment, probe timeouts that name the host, a Warning Event per blocker."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.helpers import NS, OperatorHandle, condition, connection, eventually, integration, plan_sync
from tests.operator.test_operator import apply_connections, events_for, events_once_emitted, finished_runs, get
from walkme_dic_dev.cluster import Cluster

README = Path(__file__).resolve().parents[2] / "README.md"
REQUESTED_AT = "integrations.walkme.io/requested-at"


def readme_block(marker: str) -> str:
    """The fenced shell block README shows between ``<!-- marker -->`` and ``<!-- /marker -->``."""
    section = README.read_text().split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    return re.search(r"```(?:bash|sh)\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


async def run_process(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def kube_env(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))}


async def requested_run(cluster: Cluster, name: str, value: str) -> dict[str, Any]:
    async def started() -> dict[str, Any] | None:
        runs = (await get(cluster, "Integration", name))["status"].get("runs") or []
        return next((r for r in runs if r.get("requestedAt") == value), None)

    return await eventually(started)


async def after_a_first_run(
    cluster: Cluster, backends: dict, sync_plans: Path, *, next_rows: int, next_seconds: float,
) -> None:
    """Integration `users` with its creation run done; its next run takes ``next_seconds`` and writes ``next_rows``."""
    await apply_connections(cluster, backends)
    await cluster.apply(integration("users"))
    await finished_runs(cluster, "users")
    plan_sync(sync_plans, "users", sleep=next_seconds, result={"result": "Succeeded", "reason": "Synced",
                                                               "rowsRead": next_rows, "rowsWritten": next_rows})


async def test_readme_wait_recipe_returns_when_the_requested_run_has_finished(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
    kubectl_binary: Path, kube_env: dict[str, str],
) -> None:
    await after_a_first_run(cluster, backends, sync_plans, next_rows=5, next_seconds=3)
    env = {**kube_env, "PATH": f"{kubectl_binary.parent}{os.pathsep}{os.environ['PATH']}"}
    names, commands = readme_block("wait-recipe").split("\n", 1)
    assert re.match(r"name=\S+ namespace=\S+ ", names), "the recipe starts by naming the Integration"
    script = f"name=users namespace={NS}\n{commands}"  # the rest verbatim
    recipe = asyncio.create_task(run_process("bash", "-euo", "pipefail", "-c", script, env=env))

    value = (await eventually(lambda: _annotation(cluster)))
    run = await requested_run(cluster, "users", value)
    assert run["result"] == "Running"
    obj = await get(cluster, "Integration", "users")
    assert condition(obj, "Ready")["status"] == "True", "Ready keeps the last result while the run goes"
    assert condition(obj, "Reconciling")["reason"] == "RunInProgress"
    await asyncio.sleep(1)
    assert not recipe.done(), "kubectl wait returned while the requested run was still going"

    code, out, err = await asyncio.wait_for(recipe, timeout=60)
    assert code == 0, err
    obj = await get(cluster, "Integration", "users")
    assert obj["status"]["lastHandledRequestedAt"] == value
    assert obj["status"]["runs"][0]["requestedAt"] == value
    assert out.strip().splitlines()[-1] == "Succeeded read 5, wrote 5, rejected 0"


async def _annotation(cluster: Cluster) -> str | None:
    annotations = (await get(cluster, "Integration", "users"))["metadata"].get("annotations") or {}
    return annotations.get(REQUESTED_AT)


async def walkme_dic_run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_process(sys.executable, "-m", "walkme_dic", "run", *args, env=env)


async def test_walkme_dic_run_follows_the_run_to_its_result(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path, kube_env: dict[str, str],
) -> None:
    await after_a_first_run(cluster, backends, sync_plans, next_rows=4, next_seconds=2)
    code, out, err = await walkme_dic_run(kube_env, "users", "-n", NS, "--wait", "--timeout", "60s")
    assert code == 0, out + err
    obj = await get(cluster, "Integration", "users")
    value = obj["metadata"]["annotations"][REQUESTED_AT]
    run = obj["status"]["runs"][0]
    assert (run["requestedAt"], run["result"], obj["status"]["lastHandledRequestedAt"]) == (value, "Succeeded", value)
    assert f"requested a run of Integration {NS}/users ({REQUESTED_AT}={value})" in out
    assert f"run {run['name']} is in progress" in out
    assert out.strip().splitlines()[-1] == f"run {run['name']} succeeded: read 4, wrote 4, rejected 0"

    plan_sync(sync_plans, "users", result={"result": "Failed", "reason": "NotFound",
                                           "message": "bucket 'lake' does not exist"})
    code, out, err = await walkme_dic_run(kube_env, "users", "-n", NS, "--wait", "--timeout", "60s")
    assert code == 1
    assert err.strip().endswith("failed: NotFound: bucket 'lake' does not exist"), err

    plan_sync(sync_plans, "users", sleep=30)
    code, out, err = await walkme_dic_run(kube_env, "users", "-n", NS, "--wait", "--timeout", "3s")
    assert code == 1 and "timed out after 3s; last seen: run " in err, err

    code, out, err = await walkme_dic_run(kube_env, "users", "-n", NS)
    assert code == 0 and "kubectl wait wmint/users" in out, "without --wait it only asks, and says how to wait"


async def test_walkme_dic_run_refuses_what_cannot_run(
    cluster: Cluster, operator: OperatorHandle, backends: dict, kube_env: dict[str, str],
) -> None:
    code, _, err = await walkme_dic_run(kube_env, "nobody", "-n", NS, "--wait")
    assert code == 1 and f"Integration {NS}/nobody not found" in err
    code, _, err = await walkme_dic_run(kube_env, "nobody", "--wait")  # no -n: the context's namespace
    assert code == 1 and "Integration default/nobody not found" in err, err
    code, _, err = await walkme_dic_run({**kube_env, "KUBECONFIG": "/nonexistent/kubeconfig"}, "nobody")
    assert code == 1 and "/nonexistent/kubeconfig" in err and "Traceback" not in err, err

    await cluster.apply(integration("broken", schedule="every day"))
    await eventually(lambda: _reason(cluster, "broken", "Stalled", "InvalidSpec"))
    code, _, err = await walkme_dic_run(kube_env, "broken", "-n", NS, "--wait", "--timeout", "30s")
    assert code == 1 and "no run started: InvalidSpec: spec.schedule: 'every day'" in err, err

    await apply_connections(cluster, backends)
    await cluster.apply(integration("paused", suspend=True))
    await eventually(lambda: _reason(cluster, "paused", "Ready", "Suspended"))
    code, _, err = await walkme_dic_run(kube_env, "paused", "-n", NS, "--wait", "--timeout", "30s")
    assert code == 1 and "suspended" in err


async def _reason(cluster: Cluster, name: str, type_: str, reason: str) -> bool:
    return condition(await get(cluster, "Integration", name), type_).get("reason") == reason


async def test_integration_blockers_post_one_warning_each(
    cluster: Cluster, operator: OperatorHandle, backends: dict,
) -> None:
    await cluster.apply(integration("orphan"))
    await cluster.apply(integration("broken", schedule="0 0 31 2 *", timeZone="Europe/Berlin"))
    orphan = await events_once_emitted(cluster, "orphan", "ConnectionNotFound")
    broken = await events_once_emitted(cluster, "broken", "InvalidSpec")
    assert [(e["type"], e["reason"]) for e in orphan] == [("Warning", "ConnectionNotFound")]
    assert "spec.connectionRef: Connection 'lake' does not exist" in orphan[0]["message"]
    assert [(e["type"], e["reason"]) for e in broken] == [("Warning", "InvalidSpec")]
    assert broken[0]["message"].startswith("spec.schedule: '0 0 31 2 *' never comes")
    await asyncio.sleep(2)  # several resync passes (0.5 s) later: still one Event each
    assert len(await events_for(cluster, "orphan")) == 1 and len(await events_for(cluster, "broken")) == 1


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """An HTTP endpoint that accepts connections and never answers (a black-holed host)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.close()
    for writer in held:  # the abandoned probe thread gets an error now instead of waiting out its timeout
        writer.transport.abort()
    await server.wait_closed()


async def test_connection_shows_probing_at_once_and_a_timeout_names_the_host(
    cluster: Cluster, operator: OperatorHandle, silent_endpoint: str, backends: dict,
) -> None:
    for obj in backends["manifests"][:4]:  # the Secrets and the WalkMe Connection
        await cluster.apply(obj)
    await cluster.apply(connection("slow", {"s3": {"bucket": "slow-bucket", "region": "us-east-1",
                                                   "endpointUrl": f"http://{silent_endpoint}",
                                                   "auth": {"secretRef": {"name": "aws"}}}}))
    await cluster.apply(integration("users", connectionRef={"name": "slow"}))

    async def probing() -> dict[str, Any] | None:
        obj = await get(cluster, "Connection", "slow")
        return obj if condition(obj, "Reconciling").get("reason") == "Probing" else None

    obj = await eventually(probing, timeout=5)
    assert condition(obj, "Reconciling")["status"] == "True"
    assert (condition(obj, "Ready")["status"], condition(obj, "Ready")["reason"]) == ("Unknown", "Probing")
    assert f"bucket 'slow-bucket' at {silent_endpoint}" in condition(obj, "Ready")["message"]

    async def waiting_for_the_probe() -> dict[str, Any] | None:
        obj = await get(cluster, "Integration", "users")
        return obj if "probing bucket 'slow-bucket'" in condition(obj, "Ready").get("message", "") else None

    users = await eventually(waiting_for_the_probe, timeout=5)
    assert (condition(users, "Ready")["status"], condition(users, "Ready")["reason"]) == \
        ("Unknown", "ConnectionNotReady")
    assert await events_for(cluster, "users") == [], "waiting for a first probe is not a fault"

    async def timed_out() -> dict[str, Any] | None:
        obj = await get(cluster, "Connection", "slow")
        return obj if condition(obj, "Ready").get("reason") == "ProbeFailed" else None

    obj = await eventually(timed_out, timeout=30)
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"cannot reach bucket 'slow-bucket' at {silent_endpoint}: no connection")
    assert condition(obj, "Reconciling")["status"] == "False"
    events = await events_once_emitted(cluster, "slow", "ProbeFailed")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "ProbeFailed")], "no Event for Probing"
    warned = await events_once_emitted(cluster, "users", "ConnectionNotReady")
    assert [(e["type"], e["reason"]) for e in warned] == [("Warning", "ConnectionNotReady")]
    assert condition(await get(cluster, "Integration", "users"), "Ready")["status"] == "False"


def parse_table(output: str) -> list[dict[str, str]]:
    """kubectl's table as dicts: header words are single-spaced, columns at least three spaces apart."""
    header, *lines = output.rstrip("\n").split("\n")
    starts = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    ends: list[int | None] = [start for start, _ in starts[1:]] + [None]
    bounds = [(start, end, name) for (start, name), end in zip(starts, ends, strict=True)]
    return [{name: line[start:end].strip() for start, end, name in bounds} for line in lines]


async def test_kubectl_get_shows_the_reason_and_wide_columns_worth_having(
    cluster: Cluster, operator: OperatorHandle, backends: dict, sync_plans: Path,
    kubectl_binary: Path, kube_env: dict[str, str],
) -> None:
    await apply_connections(cluster, backends)
    plan_sync(sync_plans, "users", result={"result": "Failed", "reason": "TooManyRejectedRows", "rowsRead": 40,
                                           "rowsRejected": 12, "message": "12 of 40 rows rejected (limit 5%)"})
    await cluster.apply(integration("users", schedule="0 * * * *"))
    await finished_runs(cluster, "users")

    async def kubectl(*args: str) -> list[dict[str, str]]:
        code, out, err = await run_process(str(kubectl_binary), *args, "-n", NS, env=kube_env)
        assert code == 0, err
        return parse_table(out)

    [row] = await kubectl("get", "wmint")
    assert (row["READY"], row["REASON"]) == ("False", "RunFailed")
    assert "CONNECTION" not in row, "wide columns stay out of the default view"
    [wide] = await kubectl("get", "wmint", "-o", "wide")
    assert (wide["CONNECTION"], wide["LAST RESULT"], wide["REJECTED"], wide["ACTIVE RUN"]) == \
        ("lake", "Failed", "12", "")  # kubectl leaves the cell of an absent field empty
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", wide["NEXT RUN"]), wide
    assert wide["MESSAGE"] == "TooManyRejectedRows: 12 of 40 rows rejected (limit 5%)"
    connections = {r["NAME"]: r for r in await kubectl("get", "wmconn", "-o", "wide")}
    assert (connections["lake"]["REASON"], connections["lake"]["LAST PROBE"] != "") == ("Probed", True)
    assert connections["lake"]["MESSAGE"]
