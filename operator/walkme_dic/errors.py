"""Errors shared by connectors, the sync engine and the controllers.

Every message must be safe to show: it never contains a secret value.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pydantic

from walkme_dic import reasons
from walkme_dic.reasons import DESTINATION_EXISTS, PARTIALLY_APPLIED

if TYPE_CHECKING:
    from walkme_dic.connectors.records import WriteReport


class DicError(Exception):
    """Base class. ``reason`` is a CamelCase word used in status conditions and results."""

    reason = reasons.ERROR

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class PermanentError(DicError):
    """The user must change something (credentials, bucket, SOQL, mapping); retrying will not help."""

    reason = reasons.PERMANENT_ERROR


class DestinationExistsError(PermanentError):
    """A write that must not replace an existing object found one (an incremental export's earlier file)."""

    reason = DESTINATION_EXISTS

    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where} already exists, written by an earlier run: this export is incremental (since: lastRun), so "
            "each run's file holds rows no other file has, and it never overwrites one; put {runId} in "
            "destination.file.path (e.g. users-{date}-{runId}.csv). Nothing was written and the watermark stays: "
            "the next run exports these rows")


class PartlyApplied(PermanentError):
    """A write that stopped part way: a Bulk job ended Failed or Aborted, what it processed stays applied, and
    the records after it were not sent. ``report`` says what was applied, refused and not processed (by input
    index); ``unprocessed`` how many of its failures are records the job never processed."""

    def __init__(self, message: str, report: WriteReport, *, unprocessed: int) -> None:
        super().__init__(message, reason=PARTIALLY_APPLIED if report.written else reasons.BULK_JOB_FAILED)
        self.report, self.unprocessed = report, unprocessed


class TransientError(DicError):
    """A fault that may pass (throttling, 5xx, dropped connection); retried with backoff."""

    reason = reasons.TRANSIENT_ERROR


class UnreachableError(TransientError):
    """No session could be opened with the host (nothing answered as the protocol should), whatever the cause:
    status reports every such failure alike (connections.unreachable_message)."""


class AuthenticationError(PermanentError):
    reason = reasons.AUTHENTICATION_FAILED


class NotFoundError(PermanentError):
    reason = reasons.NOT_FOUND


class ValidationError(PermanentError):
    reason = reasons.INVALID_INPUT


_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")
_FIELD_FIRST = re.compile(r"^[a-z][A-Za-z0-9]*(?:[.[][A-Za-z0-9\]]+)*: ")


def validation_message(error: pydantic.ValidationError, root: str = "spec") -> str:
    """The first problem of a model validation as ``root.field[0].name: what is wrong``.

    Pydantic's own wording ("Value error, ", "Assertion failed, ") is dropped, and a field our
    validators already name at the start of their message is not named twice.
    """
    first = error.errors()[0]
    text = str(first["msg"])
    for prefix in _LIBRARY_PREFIXES:
        text = text.removeprefix(prefix)
    if first["loc"]:  # validators that name their own field: "schedule: … is not a valid cron expression"
        text = text.removeprefix(f"{first['loc'][-1]}: ")
    where = root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    if text.startswith((f"{where}:", f"{where}.", f"{where}[")):
        return text
    if not first["loc"] and _FIELD_FIRST.match(text):  # a model validator that names its field: "source: …"
        return f"{root}.{text}"
    return f"{where}: {text}"


def without_reason(reason: str, message: str) -> str:
    """``message`` without leading copies of ``reason`` ("NotFound: NotFound: x" under reason NotFound is "x")."""
    while reason and message.startswith(f"{reason}: "):
        message = message[len(reason) + 2:]
    return message
