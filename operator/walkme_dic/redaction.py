"""Keeping secret values out of everything that leaves a process.

A secret comes back in other clothes: a server echoes it URL-encoded (a form body, a query string),
JSON-escaped (an error that quotes the request), or base64 (an echoed Authorization header, where
HTTP Basic sends base64 of ``id:secret``). Each of those forms is replaced too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from itertools import product
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4
MASK = "***"


def encodings(value: str) -> set[str]:
    """The forms ``value`` takes on the wire: as it is, URL-encoded, JSON-escaped, base64 (alone, or anywhere
    inside a longer base64 text, standard or URL-safe alphabet)."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1], base64.b64encode(value.encode()).decode().rstrip("="),
            *base64_cores(value.encode())}


def base64_cores(data: bytes) -> set[str]:
    """What the base64 of any text holding ``data`` contains whatever comes before and after it: base64 turns
    each 3 bytes into 4 characters, so ``data`` at each of the 3 offsets has its own characters, and only
    those that depend on ``data``'s bits alone (not on its neighbours') are the same in every such text."""
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + data + bytes(2)).decode()
        first, end = -(-8 * shift // 6), 8 * (shift + len(data)) // 6  # characters made of data's bits only
        core = encoded[first:end]
        cores |= {core, core.replace("+", "-").replace("/", "_")}
    return {core for core in cores if len(core) >= MIN_SECRET_LENGTH}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value (4+ characters) in ``text``, in each of its encodings, with ***; also the
    base64 of any two of them joined by a colon (HTTP Basic of an id and a secret)."""
    values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH})
    forms = set().union(*(encodings(v) for v in values)) if values else set()
    forms |= {base64.b64encode(f"{a}:{b}".encode()).decode().rstrip("=") for a, b in product(values, repeat=2)}
    for form in sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
