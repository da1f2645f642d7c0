"""Cron slot arithmetic in a time zone (pure functions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter


def latest_slot(cron: str, time_zone: str, now: datetime) -> datetime:
    """The most recent cron time at or before ``now``."""
    local_now = now.astimezone(ZoneInfo(time_zone))
    if croniter.match(cron, local_now.replace(second=0, microsecond=0)) and local_now.second == 0:
        return local_now
    return croniter(cron, local_now).get_prev(datetime)


def next_slot(cron: str, time_zone: str, now: datetime) -> datetime:
    """The first cron time strictly after ``now``."""
    return croniter(cron, now.astimezone(ZoneInfo(time_zone))).get_next(datetime)


def due_slot(cron: str, time_zone: str, now: datetime, handled_until: datetime) -> datetime | None:
    """The latest slot after ``handled_until`` (missed slots collapse into one run), or None."""
    slot = latest_slot(cron, time_zone, now)
    return slot if slot > handled_until else None


_SPAN_START = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))
_MAX_SLOTS = 500


@lru_cache(maxsize=1024)
def max_interval(cron: str, time_zone: str) -> float:
    """The longest gap in seconds between two consecutive slots, over a year or 500 slots from a fixed start.

    A fixed start keeps the answer the same on every reconcile (it feeds a metric an alert compares
    against); a year covers weekday, monthly and DST patterns; 500 slots bound the work for
    every-minute schedules, whose gaps are all alike anyway.
    """
    slots = croniter(cron, _SPAN_START.astimezone(ZoneInfo(time_zone)))
    previous = slots.get_next(datetime)
    end = previous + timedelta(days=366)
    longest = 0.0
    for _ in range(_MAX_SLOTS):
        current = slots.get_next(datetime)
        longest = max(longest, (current - previous).total_seconds())
        if current > end:
            break
        previous = current
    return longest
