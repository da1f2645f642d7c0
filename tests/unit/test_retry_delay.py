"""retry_delay: exponential backoff that honours Retry-After in both of its forms, capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from walkme_dic.connectors.common import retry_delay


@pytest.mark.parametrize(("attempt", "retry_after", "low", "high"), [
    (1, None, 0.5, 0.5),
    (3, None, 2.0, 2.0),
    (1, "7", 7.0, 7.0),
    (4, "1", 4.0, 4.0),  # the backoff is longer than Retry-After: the longer wins
    (1, "soon", 0.5, 0.5),  # unreadable Retry-After: plain backoff
    (1, "-5", 0.5, 0.5),
    (1, "3600", 60.0, 60.0),  # capped
    (20, None, 60.0, 60.0),
])
def test_backoff_and_retry_after_seconds(attempt: int, retry_after: str | None, low: float, high: float) -> None:
    assert low <= retry_delay(attempt, 0.5, retry_after) <= high


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_delay(1, 0.5, when) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_delay(1, 0.5, past) == 0.5
