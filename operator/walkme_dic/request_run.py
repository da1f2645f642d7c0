"""`walkme-dic run NAME [-n NS] [--wait] [--timeout 10m]`: run an Integration now, like `flux reconcile`.

It sets the annotation a person or a GitOps tool would set by hand
(`integrations.walkme.io/requested-at`) to a fresh value, with the same Kubernetes credentials
as the operator (walkme_dic.kube). With --wait it follows the Integration's status until the
operator reports that this request's run has finished: `status.lastHandledRequestedAt` equals the
value it set (the operator writes it together with the run's result), then prints the result.
Exit code 0 when the run succeeded or was skipped, 1 when it failed, could not start (stalled,
suspended, not found) or the timeout passed, 2 for bad arguments.

What a status means for the waiting person is decided by `follow()`, a pure function; `main()`
only talks to the API. It polls (one GET a second) rather than watches: a run takes seconds to
hours, and a GET is the one verb every API server and RBAC setup we support answers the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from walkme_dic import reasons
from walkme_dic.api.common import parse_duration
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.conditions import find_condition
from walkme_dic.controllers.runtime import INTEGRATIONS
from walkme_dic.jobs.naming import ANNOTATION_REQUESTED_AT
from walkme_dic.kube import ApiError, ClusterAccess, CredentialsError, KubeClient

POLL_SECONDS = 1.0
State = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Blocked"]


@dataclass(frozen=True)
class Progress:
    """Where the requested run stands; ``done`` when waiting longer cannot change the answer."""

    state: State
    message: str
    run: str | None = None

    @property
    def done(self) -> bool:
        return self.state not in ("Pending", "Running")

    @property
    def ok(self) -> bool:
        return self.state in ("Succeeded", "Skipped")


def fresh_value(now: datetime) -> str:
    """A requested-at value that differs from every earlier one (RFC 3339 with microseconds, like Flux)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def follow(obj: dict[str, Any], requested: str) -> Progress:
    """What the Integration ``obj`` says about the run asked for with requested-at = ``requested``."""
    status = IntegrationStatus.model_validate(obj.get("status") or {})
    record = next((r for r in status.runs if r.requested_at == requested), None)
    if status.last_handled_requested_at == requested:
        if record is None:  # newer runs pushed it out of the history already: the last result is ours or later
            last = status.last_result
            return Progress(last.result, last.message) if last else Progress("Succeeded", "")
        return Progress(record.result, record.message, record.name)
    if record is not None:
        return Progress("Running", f"run {record.name} is in progress", record.name)
    generation = (obj.get("metadata") or {}).get("generation")
    stalled = find_condition(status.conditions, reasons.STALLED)
    if stalled is not None and stalled.status == "True" and stalled.observed_generation == generation:
        return Progress("Blocked", f"{stalled.reason}: {stalled.message}; no run can start until the spec is fixed")
    if (obj.get("spec") or {}).get("suspend"):
        return Progress("Blocked", "the Integration is suspended: no run starts; set spec.suspend to false first")
    ready = find_condition(status.conditions, reasons.READY)
    if ready is not None and ready.status != "True" and ready.reason not in (reasons.RUN_FAILED,
                                                                            reasons.RUN_IN_PROGRESS):
        return Progress("Pending", f"waiting: {ready.reason}: {ready.message}")
    active = status.active_run
    if active:
        return Progress("Pending", f"waiting for run {active} to finish; the requested run starts after it")
    return Progress("Pending", "waiting for the operator to start the run")


async def request_and_follow(
    client: KubeClient, namespace: str, name: str, *, wait: bool, timeout: float, now: datetime,
) -> int:
    requested = fresh_value(now)
    patch = {"metadata": {"annotations": {ANNOTATION_REQUESTED_AT: requested}}}
    try:
        await client.patch(INTEGRATIONS, namespace, name, patch)
    except ApiError as error:
        what = "not found" if error.status == 404 else f"could not be annotated: {error.message}"
        print(f"Integration {namespace}/{name} {what}", file=sys.stderr)
        return 1
    print(f"requested a run of Integration {namespace}/{name} ({ANNOTATION_REQUESTED_AT}={requested})")
    if not wait:
        print(f"follow it with: kubectl wait wmint/{name} -n {namespace} "
              f"--for=jsonpath='{{.status.lastHandledRequestedAt}}'={requested}")
        return 0
    return await _follow_until_done(client, namespace, name, requested, timeout)


async def _follow_until_done(client: KubeClient, namespace: str, name: str, requested: str, timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    said = ""
    progress = Progress("Pending", "waiting for the operator to start the run")
    while loop.time() < deadline:
        try:
            progress = follow(await client.get(INTEGRATIONS, namespace, name), requested)
        except ApiError as error:
            if error.status == 404:
                print(f"Integration {namespace}/{name} was deleted while waiting", file=sys.stderr)
                return 1
            raise
        line = _line(progress)
        if line != said:
            print(line, file=sys.stdout if progress.ok or not progress.done else sys.stderr, flush=True)
            said = line
        if progress.done:
            return 0 if progress.ok else 1
        await asyncio.sleep(POLL_SECONDS)
    print(f"timed out after {timeout:.0f}s; last seen: {progress.message}", file=sys.stderr)
    return 1


def _line(progress: Progress) -> str:
    run = f"run {progress.run} " if progress.run else "run "
    if progress.state in ("Succeeded", "Skipped", "Failed"):
        return f"{run}{progress.state.lower()}: {progress.message}".rstrip(": ")
    if progress.state == "Blocked":
        return f"no run started: {progress.message}"
    return progress.message


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="walkme-dic run", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="Integration name")
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--wait", action="store_true", help="follow the run and exit with its result")
    parser.add_argument("--timeout", default="10m", help="how long --wait waits, e.g. 90s, 10m, 1h (default 10m)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    args = parser.parse_args(argv)
    try:
        args.timeout_seconds = parse_duration(args.timeout).total_seconds()
    except ValueError as error:
        parser.error(f"--timeout: {error}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    access = ClusterAccess.discover(args.kubeconfig)
    try:  # like kubectl: -n, else the context's namespace
        namespace = args.namespace or access.current().default_namespace or "default"
    except CredentialsError as error:
        print(f"walkme-dic run: {error}", file=sys.stderr)
        return 1

    async def run() -> int:
        client = KubeClient(access, user_agent="walkme-dic-run")
        try:
            return await request_and_follow(client, namespace, args.name, wait=args.wait,
                                            timeout=args.timeout_seconds, now=datetime.now(UTC))
        finally:
            await client.close()

    return asyncio.run(run())
