"""Reconciles that fail: tried again after a growing wait, told in a Warning Event, cleared by the next success.

kopf retries its change handlers, not the ``on.event`` handlers this operator runs on (kopf calls them once
per watch event and logs what they raise), so a failed reconcile would wait, unseen, for the next event or
resync pass. Here each failure in a row doubles the wait before the next attempt (job_refusals.backoff: 10 s, 20 s,
… up to 300 s), a Warning Event ``ReconcileFailed`` says what failed once per distinct failure, the
Integration's Reconciling condition says so too where it can be written (the failure may be that write), and
the first reconcile that goes through forgets the failures. A reconcile a watch event starts within the wait
may go through (a changed spec may be the fix); failing, it neither lengthens the wait nor moves the retry.
The resync pass skips an object while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from walkme_dic import reasons
from walkme_dic.api.connection import ConnectionStatus
from walkme_dic.api.integration import IntegrationStatus
from walkme_dic.conditions import set_condition
from walkme_dic.controllers.common import status_patch
from walkme_dic.controllers.events import emit
from walkme_dic.controllers.runtime import Runtime
from walkme_dic.kube import ApiError, Resource
from walkme_dic.planning.job_refusals import refused

log = logging.getLogger("walkme_dic.backoff")
STATUS_MODELS: dict[str, type[IntegrationStatus] | type[ConnectionStatus]] = {
    "Integration": IntegrationStatus, "Connection": ConnectionStatus,
}


def failure_message(error: BaseException) -> str:
    """What an Event may say of ``error``: the API server's own words, else only the kind of error (its text
    could hold a value read from a Secret; the operator's log has the traceback)."""
    if isinstance(error, ApiError):
        return f"the API server answered {error.status} {error.reason}: {error.message}"
    return f"{type(error).__name__} (the operator's log has the details)"


def later(memo: Runtime, seconds: float, attempt: Callable[[], Awaitable[None]]) -> None:
    """Run ``attempt`` after ``seconds`` (kept in memo.retries, which shutdown cancels)."""

    async def again() -> None:
        await asyncio.sleep(seconds)
        await attempt()

    task = asyncio.get_running_loop().create_task(again())
    memo.retries.add(task)
    task.add_done_callback(memo.retries.discard)


async def reconcile_failed(memo: Runtime, kind: str, body: dict[str, Any], error: BaseException,
                           attempt: Callable[[], Awaitable[None]], *, status_of: Resource | None = None) -> None:
    """Back off after a failed reconcile of ``body``: the Event, the condition (with ``status_of``) and the retry."""
    meta = body["metadata"]
    key = (kind, meta["namespace"], meta["name"])
    previous, now = memo.failures.get(key), time.monotonic()
    if previous is not None and now < previous.retry_at:
        return  # a watch event's reconcile failed within the wait: the retry at its end stands, the wait too
    failure = refused(previous, failure_message(error), now)
    memo.failures[key] = failure
    message = (f"reconciling this {kind} failed: {failure.message}; tried again in {failure.wait:g}s (attempt "
               f"{failure.attempts})")
    if status_of is not None:
        with contextlib.suppress(ApiError, OSError, ValidationError):
            old = STATUS_MODELS[kind].model_validate(body.get("status") or {})
            new = old.clone()
            new.conditions = set_condition(old.conditions, reasons.RECONCILING, "True", reasons.RECONCILE_FAILED,
                                           message, generation=int(meta.get("generation") or 1), now=datetime.now(UTC))
            written = await memo.client.patch(status_of, meta["namespace"], meta["name"], status_patch(old, new),
                                              status=True)
            memo.remember(kind, written)
    if previous is None or previous.message != failure.message:
        await emit(memo.client, body, "Warning", reasons.RECONCILE_FAILED, message)
    later(memo, failure.wait, attempt)


def backing_off(memo: Runtime, kind: str, namespace: str, name: str) -> bool:
    """Whether the object waits out a failure's backoff (the resync pass leaves it to its retry; its own
    watch events still reconcile it: a changed spec may be the fix)."""
    failure = memo.failures.get((kind, namespace, name))
    return failure is not None and time.monotonic() < failure.retry_at


def reconciled(memo: Runtime, kind: str, namespace: str, name: str) -> None:
    """A reconcile went through: the next failure starts the backoff afresh."""
    memo.failures.pop((kind, namespace, name), None)
