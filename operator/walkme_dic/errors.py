"""Errors shared by connectors, the sync engine and the controllers.

Every message must be safe to show: it never contains a secret value.
"""

from __future__ import annotations


class DicError(Exception):
    """Base class. ``reason`` is a CamelCase word used in status conditions and results."""

    reason = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class PermanentError(DicError):
    """The user must change something (credentials, bucket, SOQL, mapping); retrying will not help."""

    reason = "PermanentError"


class TransientError(DicError):
    """A fault that may pass (throttling, 5xx, dropped connection); retried with backoff."""

    reason = "TransientError"


class AuthenticationError(PermanentError):
    reason = "AuthenticationFailed"


class NotFoundError(PermanentError):
    reason = "NotFound"


class ValidationError(PermanentError):
    reason = "InvalidInput"
