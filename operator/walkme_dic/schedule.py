"""Cron slot arithmetic in a time zone (pure functions)."""

from __future__ import annotations

from datetime import datetime
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
