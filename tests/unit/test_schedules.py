"""A schedule is what a Kubernetes CronJob accepts, or InvalidSpec with the reason; never an exception.

Before (issue 20): `schedule: "0 0 31 2 *"` and a 256-character `timeZone` passed validation, and every
resync then raised from croniter or zoneinfo (no status at all, a traceback each time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from walkme_dic.api.integration import IntegrationSpec
from walkme_dic.schedule import MACROS, latest_slot, max_interval, next_slot, schedule_problem, time_zone_problem

SPEC = {
    "direction": "Inbound", "connectionRef": {"name": "lake"}, "walkmeConnectionRef": {"name": "walkme"},
    "source": {"file": {"path": "users.csv"}},
    "destination": {"walkme": {"integrationTokenSecretRef": {"name": "tok", "key": "token"}, "userIdProperty": "uuid"}},
    "mapping": {"key": {"source": "id", "destination": "uuid"}},
}
NOW = datetime(2026, 12, 2, 16, 30, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["0 */6 * * *", "*/15 9-17 * * 1-5", "0 0 ? * MON-FRI", "0 0 1 JAN,JUL *",
                                  "0 0 29 2 *", "0\t0  * * *", *MACROS])
def test_what_a_cronjob_runs_is_accepted_and_comes(cron: str) -> None:
    assert schedule_problem(cron) is None
    IntegrationSpec.model_validate({**SPEC, "schedule": cron, "timeZone": "Europe/Berlin"})
    assert latest_slot(cron, "Europe/Berlin", NOW) <= NOW < next_slot(cron, "Europe/Berlin", NOW)


@pytest.mark.parametrize(("cron", "says"), [
    ("0 0 31 2 *", "never comes"),
    ("0 0 30 2 *", "never comes"),
    ("* * * * * *", "has 6 fields"),
    ("0 0 1 1 * 2030", "has 6 fields"),
    ("0 0 L * *", "'L' is not a cron field"),
    ("0 0 1W * *", "'1W' is not a cron field"),
    ("0 0 * * MON#2", "'MON#2' is not a cron field"),
    ("@reboot", "not one of the macros"),
    ("@every 1h", "not one of the macros"),
    ("61 * * * *", "out of range"),
    ("0 0 * * *\n", "white space"),
    ("", "has 0 fields"),
])
def test_what_a_cronjob_refuses_is_invalid_spec_naming_it(cron: str, says: str) -> None:
    assert says in (schedule_problem(cron) or "")
    with pytest.raises(ValidationError, match="schedule"):
        IntegrationSpec.model_validate({**SPEC, "schedule": cron})


@pytest.mark.parametrize("zone", ["a" * 256, "", "/etc/passwd", "../../etc/localtime", "UTC\n", "Mars/Olympus"])
def test_a_time_zone_that_is_no_iana_name_is_refused_without_leaking_a_path(zone: str) -> None:
    with pytest.raises(ValidationError) as error:
        IntegrationSpec.model_validate({**SPEC, "schedule": "@daily", "timeZone": zone})
    text = str(error.value)
    assert "timeZone" in text and "site-packages" not in text and "zoneinfo/" not in text


CRON_ALPHABET = st.sampled_from(["0", "1", "5", "7", "12", "23", "29", "30", "31", "59", "60", "*", "?", "/", "-",
                                 ",", "L", "W", "#", "MON", "FEB", "@daily", "@every", " ", "\t"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(CRON_ALPHABET, max_size=14).map("".join), st.text(max_size=20)),
       st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu"]),
                 st.text(max_size=80)))
def test_any_schedule_and_zone_is_refused_or_runs(cron: str, zone: str) -> None:
    """Random strings: a ValidationError naming the field, or every schedule function answers."""
    try:
        IntegrationSpec.model_validate({**SPEC, "schedule": cron, "timeZone": zone})
    except ValidationError as error:
        assert "schedule" in str(error) or "timeZone" in str(error)
        return
    slot = latest_slot(cron, zone, NOW)
    assert slot <= NOW < next_slot(cron, zone, NOW) <= NOW + timedelta(days=5 * 366)
    assert max_interval(cron, zone) > 0


def test_the_zone_check_is_what_the_functions_need() -> None:
    assert time_zone_problem("Europe/Berlin") is None
    assert "longer than any" in (time_zone_problem("x" * 65) or "")


VALID_CRONS = st.sampled_from(["0 */6 * * *", "*/15 9-17 * * 1-5", "30 2 * * *", "0 0 29 2 *", "*/1 * * * *",
                               "0 3 * * SUN", *MACROS])
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"])
STEPS = st.lists(st.one_of(st.integers(min_value=-3 * 86400, max_value=40 * 86400),
                           st.sampled_from([60, 900, 3600, 6 * 3600, 86400, -60])), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(VALID_CRONS, ZONES, st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)), STEPS,
       st.booleans())
@example("0 */6 * * *", "UTC", datetime(2026, 3, 1, 11, 0), [0, 3600], True)  # then at the next slot
def test_cached_slots_are_croniters_at_any_sequence_of_times(cron: str, zone: str, start: datetime,
                                                             steps: list[int], on_the_hour: bool) -> None:
    """The slots kept per schedule (schedule._window) are the ones croniter gives afresh, whichever times are
    asked in whichever order (back in time, across DST nights, at a slot's very second)."""
    now = start.replace(minute=0, second=0, microsecond=0) if on_the_hour else start
    now = now.replace(tzinfo=UTC)
    for step in steps:
        now += timedelta(seconds=step)
        local = now.astimezone(ZoneInfo(zone))
        minute = local.replace(second=0, microsecond=0)
        expected = minute if croniter.match(cron, minute) else croniter(cron, local).get_prev(datetime)
        assert latest_slot(cron, zone, now) == expected
        assert next_slot(cron, zone, now) == croniter(cron, local).get_next(datetime)
        assert latest_slot(cron, zone, now) <= now < next_slot(cron, zone, now)
