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


_SPAN_START = datetime(2026, 1, 1)
_SPAN = timedelta(days=366)
_MAX_SLOTS = 2000


@lru_cache(maxsize=1024)
def max_interval(cron: str, time_zone: str) -> float:
    """The longest gap in seconds between two consecutive slots over a year from a fixed start.

    Two passes, so that neither walks every slot of a busy schedule through a whole year: up to 2000
    consecutive slots (the gaps within days), then the gap around each midnight of the year (weekends,
    month ends, DST nights). A fixed start keeps the answer the same on every reconcile: it feeds a
    metric that an alert compares against. Cached per (cron, zone).
    """
    zone = ZoneInfo(time_zone)
    first_midnight = _SPAN_START.replace(tzinfo=zone)
    slots = croniter(cron, first_midnight)
    previous = slots.get_next(datetime)
    longest = timedelta(0)
    for _ in range(_MAX_SLOTS):
        current = slots.get_next(datetime)
        longest = max(longest, current - previous)
        if current > first_midnight + _SPAN:
            break
        previous = current
    for day in range(_SPAN.days):
        midnight = first_midnight + timedelta(days=day)
        after = croniter(cron, midnight - timedelta(seconds=1)).get_next(datetime)  # a slot at midnight counts
        longest = max(longest, after - croniter(cron, after).get_prev(datetime))
    return longest.total_seconds()
