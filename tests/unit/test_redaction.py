"""Secrets are masked in every encoding a server may echo them in (issue 20, item 7)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from walkme_dic.redaction import MASK, encodings, redact

SECRET = "p@ss word/ü+\"x"
CLIENT_ID = "client-7"


def test_each_encoding_of_a_secret_is_masked() -> None:
    echoed = {
        "raw": SECRET,
        "url": quote(SECRET, safe=""),
        "form": quote_plus(SECRET),
        "json": json.dumps({"password": SECRET})[14:-2],
        "json ascii": json.dumps(SECRET)[1:-1],
        "base64": base64.b64encode(SECRET.encode()).decode(),
        "basic": "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode(),
    }
    for how, text in echoed.items():
        masked = redact(f"server said: {text}.", [CLIENT_ID, SECRET])
        assert MASK in masked and SECRET not in masked, (how, masked)
        assert text.removeprefix("Basic ") not in masked, (how, masked)


def test_short_values_and_empty_lists_leave_text_alone() -> None:
    assert redact("abc and 123", ["abc", "", "12"]) == "abc and 123"
    assert redact("nothing here", []) == "nothing here"


SECRETS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="*"), min_size=4, max_size=24)


@settings(max_examples=300, deadline=None)
@given(SECRETS, SECRETS, st.text(max_size=20), st.text(max_size=20), st.data())
def test_no_encoding_of_a_secret_survives(secret: str, other: str, before: str, after: str,
                                          data: st.DataObject) -> None:
    forms = sorted(encodings(secret) | {base64.b64encode(f"{other}:{secret}".encode()).decode().rstrip("=")})
    form = data.draw(st.sampled_from(forms))
    masked = redact(before + form + after, [secret, other])
    assert form not in masked and secret not in masked


def base64_runs_hold(text: str, secret: bytes) -> bool:
    """Whether some run of base64 characters in ``text``, decoded from any of its 4 phases, holds ``secret``."""
    for run in re.findall(r"[A-Za-z0-9+/\-_]+", text):
        standard = run.replace("-", "+").replace("_", "/")
        for phase in range(4):
            chunk = standard[phase:]
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk
            chunk += "=" * (-len(chunk) % 4)
            if secret in base64.b64decode(chunk):
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(SECRETS, st.binary(max_size=12), st.binary(max_size=12), st.booleans())
def test_a_secret_inside_a_longer_base64_text_is_masked_at_every_offset(secret: str, before: bytes, after: bytes,
                                                                       urlsafe: bool) -> None:
    """A token or a header that carries the secret among other bytes (a JWT, Basic of a longer text)."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(before + secret.encode() + after).decode()
    assert base64_runs_hold(text, secret.encode())  # the check below can fail
    assert not base64_runs_hold(redact(f"echo: {text}", [secret]), secret.encode())
