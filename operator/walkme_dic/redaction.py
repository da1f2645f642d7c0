"""Keeping secret values out of everything that leaves a process."""

from __future__ import annotations

from collections.abc import Iterable

MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value (4+ characters) in ``text`` with ***."""
    for value in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
