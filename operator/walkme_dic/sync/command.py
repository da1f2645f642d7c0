"""`walkme-dic sync`: what every sync Job runs. Knows nothing of Kubernetes.

Input: the SyncRequest JSON (--request PATH, or the WALKME_DIC_REQUEST environment variable) and
a credentials directory (<dir>/<role>/<key>). Output: progress as JSON lines on stdout, the
SyncResult JSON (< 4 KiB) at --result (the container's termination message), and an exit code the
Job's podFailurePolicy reads (jobs/manifest.py): 0 Succeeded / Skipped, 1 Failed by a fault that may
pass (the Job retries), 2 unusable input and 3 any other failure (the Job fails at once: a retry
would read the same source and meet the same refusal).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from walkme_dic import egress, reasons
from walkme_dic.api.run import (
    EXIT_INVALID_REQUEST,
    EXIT_PERMANENT,
    EXIT_RETRYABLE,
    REQUEST_ENV,
    SyncRequest,
    SyncResult,
)
from walkme_dic.errors import validation_message
from walkme_dic.redaction import redact
from walkme_dic.sync.credentials import load_credentials
from walkme_dic.sync.engine import run_sync


def emit(event: dict[str, Any]) -> None:
    print(json.dumps({"time": round(time.time(), 3), **event}, separators=(",", ":")), flush=True)


def write_result(path: Path, result: SyncResult) -> None:
    try:
        path.write_text(result.to_termination_message())
    except OSError as error:
        emit({"level": "error", "msg": f"cannot write the result to {path}: {error}"})


def tune_interpreter() -> None:
    """Two interpreter settings for a batch run (measured in the issue 11 note; both process-wide, which is
    why they live here and not in the engine):

    * the cyclic garbage collector: a run allocates a container or two per row (a CSV row's list, a
      block's tuples) and keeps them only for a block, but the collector, run every 700 allocations,
      walked every object the imports left: a quarter of the inbound pass (0.7 of 2.9 CPU-s for 1M
      rows). The imported objects are frozen out of its walks and it runs after 50,000 allocations
      instead: it still runs, so memory stays bounded;
    * the interpreter lock's switch interval: the threads that wait on sockets (the export's prefetch,
      part uploads, WalkMe senders) get the lock back within 1 ms of their data arriving instead of
      5 ms while the main thread maps and encodes (a 2M-user export to S3: medians 4.96 → 4.57 s).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.001)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="walkme-dic sync", description="Run one sync.")
    parser.add_argument("--request", type=Path, help=f"SyncRequest JSON file (default: ${REQUEST_ENV}).")
    parser.add_argument("--credentials", type=Path, default=None, help="Directory of <role>/<key> files.")
    parser.add_argument("--result", type=Path, default=Path("/dev/termination-log"), help="Where the result goes.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format='{"level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}')
    credentials = load_credentials(args.credentials)
    try:
        text = args.request.read_text() if args.request else os.environ[REQUEST_ENV]
        request = SyncRequest.model_validate_json(text)
    except (OSError, KeyError, ValidationError, ValueError) as error:
        detail = validation_message(error, root="request") if isinstance(error, ValidationError) \
            else f"{type(error).__name__}: {error}"
        message = redact(f"the sync request is missing or invalid: {detail}", credentials.values())
        emit({"level": "error", "msg": message})
        write_result(args.result, SyncResult(result="Failed", reason=reasons.INVALID_REQUEST, message=message[:2000]))
        return EXIT_INVALID_REQUEST
    refused = egress_refusal(request)
    if refused is not None:
        emit({"level": "error", "msg": refused.message})
        write_result(args.result, refused)
        return exit_code(refused)
    tune_interpreter()
    emit({"phase": "start", "runId": request.run_id, "direction": request.spec.direction,
          "integration": f"{request.integration.namespace}/{request.integration.name}"})
    result = run_sync(request, credentials, progress=emit)
    emit({"phase": "done", "result": result.result, "reason": result.reason, "rowsRead": result.rows_read,
          "rowsWritten": result.rows_written, "rowsRejected": result.rows_rejected, "message": result.message})
    write_result(args.result, result)
    return exit_code(result)


def egress_refusal(request: SyncRequest) -> SyncResult | None:
    """Hold every connection of this process to the admin's egress rules (in $WALKME_DIC_EGRESS_POLICY, put
    there by the operator); the refusal when the request's Connections break them before any connection."""
    try:
        policy = egress.policy_from_environment()
    except ValueError as error:
        message = f"the egress rules in ${egress.POLICY_ENV} are invalid: {error}"
        return SyncResult(result="Failed", reason=reasons.INVALID_REQUEST, message=message[:2000])
    for role, spec in request.connections():
        problem = egress.spec_problem(spec, policy)
        if problem is not None:
            return SyncResult(result="Failed", reason=reasons.EGRESS_DENIED,
                              message=egress.egress_message(f"{role}: {problem}")[:2000])
    egress.install(policy)
    return None


def exit_code(result: SyncResult) -> int:
    if result.result in ("Succeeded", "Skipped"):
        return 0
    return EXIT_RETRYABLE if result.retryable else EXIT_PERMANENT
