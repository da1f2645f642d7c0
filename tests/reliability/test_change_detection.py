"""Inbound change detection (issue 23): a run sends WalkMe only new or changed users, counted by what the fake
WalkMe received. Real runs of the engine against moto (the state on the source bucket) and the fake WalkMe."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

WEEK = 7 * 24 * 3600


class Integration:
    """One Integration (its uid fixed) importing dic/people.csv from a moto bucket into the fake WalkMe."""

    def __init__(self, moto: str, bucket: str, walkme: FakeWalkMe, **spec: Any) -> None:
        self.moto, self.bucket, self.walkme, self.spec = moto, bucket, walkme, spec
        self.uid = str(uuid.uuid4())
        self.s3 = s3_client(moto)

    def another(self) -> Integration:
        """Another Integration (a uid of its own) over the same bucket and fake WalkMe."""
        return Integration(self.moto, self.bucket, self.walkme, **self.spec)

    def run(self, rows: dict[str, tuple[str, str]], *, full_send: bool = False, now: float | None = None,
            **spec: Any) -> SyncResult:
        """Import ``rows`` (id → (plan, active)); the fake's received count is reset first."""
        body = "id,plan,active\n" + "".join(f"{key},{plan},{active}\n" for key, (plan, active) in rows.items())
        self.s3.put_object(Bucket=self.bucket, Key="dic/people.csv", Body=body.encode())
        request = SyncRequest.model_validate({
            "integration": {"namespace": "ns", "name": "people", "uid": self.uid},
            "runId": f"run-{uuid.uuid4().hex[:6]}", "force": True, "state": {"fullSend": full_send},
            "spec": {"direction": "Inbound", "connectionRef": {"name": "lake"},
                     "walkmeConnectionRef": {"name": "walkme"}, "source": {"file": {"path": "people.csv"}},
                     "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                                "userIdProperty": "uuid"}},
                     "mapping": {"key": {"source": "id", "destination": "uuid"},
                                 "fields": [{"source": "plan", "destination": "plan"}], "activeField": "active"},
                     **self.spec, **spec},
            "connection": {"s3": {"bucket": self.bucket, "region": "us-east-1", "endpointUrl": self.moto,
                                  "prefix": "dic/"}},
            "walkmeConnection": {"walkme": {"apiUrl": self.walkme.url, "insightsExportUrl": self.walkme.url,
                                            "auth": {"secretRef": {"name": "w"}}}},
        })
        credentials = CredentialSet({"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                                     "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                     "integration-token": {"token": WALKME_TOKEN}})
        self.walkme.objects_received = 0
        return run_sync(request, credentials, clock=lambda: time.time() if now is None else now)

    @property
    def state_key(self) -> str:
        return f"dic/walkme-dic/state/{self.uid}/sent.bin"

    def state(self) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.state_key)["Body"].read()


@pytest.fixture
def people(moto_server: str, bucket: str, walkme: FakeWalkMe) -> Integration:
    return Integration(moto_server, bucket, walkme)


def users(count: int) -> dict[str, tuple[str, str]]:
    return {f"user-{i}@example.com": (f"plan-{i % 3}", "true") for i in range(count)}


def test_an_unchanged_reimport_sends_nobody(people: Integration, walkme: FakeWalkMe) -> None:
    first = people.run(users(250))
    assert (first.result, first.sent, first.full_send, walkme.objects_received) == ("Succeeded", 250, "NoState", 250)
    again = people.run(users(250))
    assert (again.result, again.sent, again.unchanged, again.full_send) == ("Succeeded", 0, 250, None), again
    assert walkme.objects_received == 0 and again.users_kept == 0


def test_one_changed_one_new_one_deactivated_send_exactly_three(people: Integration, walkme: FakeWalkMe) -> None:
    rows = users(300)
    people.run(rows)
    rows["user-7@example.com"] = ("plan-9", "true")
    rows["user-8@example.com"] = (rows["user-8@example.com"][0], "false")
    rows["new@example.com"] = ("plan-1", "true")
    result = people.run(rows)
    assert (result.sent, result.new_users, result.unchanged, walkme.objects_received) == (3, 1, 298, 3), result
    assert walkme.users()["user-8@example.com"]["active"] in ("false", False)
    assert walkme.users()["user-7@example.com"]["plan"] == "plan-9"


def test_users_missing_from_the_file_stay_in_the_state_and_are_counted_as_kept(people: Integration,
                                                                              walkme: FakeWalkMe) -> None:
    rows = users(50)
    people.run(rows)
    fewer = dict(list(rows.items())[:40])
    assert (people.run(fewer).users_kept, walkme.objects_received) == (10, 0)
    back = people.run(rows)  # the ten come back unchanged: still known, nothing to send
    assert (back.sent, back.users_kept, walkme.objects_received) == (0, 0, 0), back


def test_a_failed_send_keeps_the_old_state_and_the_next_run_sends_what_was_missed(
        people: Integration, walkme: FakeWalkMe) -> None:
    rows = users(400)
    people.run(rows)
    before = people.state()
    for index in range(0, 400, 2):
        rows[f"user-{index}@example.com"] = ("gold", "true")
    walkme.fail_next("/public/v1/user/data", 1, 403)  # the first batch: the run fails, partly applied or not
    failed = people.run(rows)
    assert failed.result == "Failed", failed
    assert people.state() == before, "a failed run leaves the old state"
    retried = people.run(rows)
    assert (retried.result, retried.sent, walkme.objects_received) == ("Succeeded", 200, 200), retried
    assert all(walkme.users()[f"user-{i}@example.com"]["plan"] == "gold" for i in range(0, 400, 2))


def test_rows_walkme_refuses_are_sent_again_next_time(people: Integration, walkme: FakeWalkMe) -> None:
    people.spec["maxRejectedRows"] = 5
    walkme.declare(WALKME_TOKEN, {"plan": "String", "active": "String"})
    rows = users(20)
    people.run(rows)
    rows["user-3@example.com"] = ("gold", "true")
    rows["user-4@example.com"] = ("gold", "true")
    walkme.fail_next("/public/v1/user/data", 1, 400, body='{"message": "data[0]: refused for the test"}')
    refused = people.run(rows)
    assert (refused.result, refused.sent, refused.rows_rejected) == ("Succeeded", 2, 1), refused
    again = people.run(rows)
    assert (again.sent, walkme.objects_received, walkme.users()["user-3@example.com"]["plan"]) == (1, 1, "gold")


def test_a_mapping_change_sends_everyone(people: Integration, walkme: FakeWalkMe) -> None:
    people.run(users(30))
    result = people.run(users(30), mapping={"key": {"source": "id", "destination": "uuid"},
                                            "fields": [{"source": "plan", "destination": "tier"}]})
    assert (result.full_send, result.sent, walkme.objects_received) == ("MappingChanged", 30, 30), result


def test_a_damaged_missing_or_foreign_state_means_a_full_send_with_the_reason(people: Integration,
                                                                              walkme: FakeWalkMe) -> None:
    people.run(users(30))
    state = bytearray(people.state())
    state[len(state) // 2] ^= 0xFF
    people.s3.put_object(Bucket=people.bucket, Key=people.state_key, Body=bytes(state))
    damaged = people.run(users(30))
    assert (damaged.full_send, damaged.sent, walkme.objects_received) == ("StateUnreadable", 30, 30), damaged
    people.s3.put_object(Bucket=people.bucket, Key=people.state_key, Body=people.state()[:40])
    assert people.run(users(30)).full_send == "StateUnreadable"
    people.s3.delete_object(Bucket=people.bucket, Key=people.state_key)
    assert people.run(users(30)).full_send == "NoState"
    other = people.another()
    other.s3.put_object(Bucket=people.bucket, Key=other.state_key, Body=people.state())
    foreign = other.run(users(30))
    assert (foreign.full_send, foreign.sent) == ("ForeignState", 30), foreign
    assert "belongs to another Integration" in foreign.message


def test_the_interval_and_the_annotation_trigger_full_sends(people: Integration, walkme: FakeWalkMe) -> None:
    start = time.time()
    people.run(users(20), now=start)
    assert people.run(users(20), now=start + WEEK - 60).sent == 0
    late = people.run(users(20), now=start + WEEK + 1)
    assert (late.full_send, late.sent, walkme.objects_received) == ("Interval", 20, 20), late
    assert people.run(users(20), now=start + WEEK + 2).sent == 0, "the interval counts from the last full send"
    daily = people.run(users(20), now=start + WEEK + 2 + 86400, fullResendInterval="24h")
    assert daily.full_send == "Interval"
    asked = people.run(users(20), full_send=True, now=start + WEEK + 3 + 86400)
    assert (asked.full_send, asked.sent, walkme.objects_received) == ("Requested", 20, 20), asked


def test_change_detection_off_sends_everyone_and_clears_the_state(people: Integration, walkme: FakeWalkMe) -> None:
    people.run(users(20))
    off = people.run(users(20), changeDetection=False)
    assert (off.full_send, off.sent, walkme.objects_received) == ("Disabled", 20, 20), off
    on = people.run(users(20))
    assert (on.full_send, on.sent) == ("NoState", 20), on
    assert "change detection was off" in on.message


def test_a_dry_run_reports_what_it_would_send_and_writes_no_state(people: Integration, walkme: FakeWalkMe) -> None:
    rows = users(40)
    people.run(rows)
    before = people.state()
    rows["user-1@example.com"] = ("plan-x", "true")
    rows["brand-new@example.com"] = ("plan-1", "true")
    dry = people.run(rows, dryRun=True)
    assert (dry.result, dry.sent, dry.new_users, dry.unchanged, walkme.objects_received) == \
        ("Succeeded", 2, 1, 39, 0), dry
    assert people.state() == before


def test_the_state_holds_no_key_or_value_in_clear(people: Integration) -> None:
    rows = {f"person-{i}@corp.example": (f"secret-plan-{i}", "true") for i in range(60)}
    people.run(rows)
    state = people.state()
    for key, (plan, _) in rows.items():
        for text in (key, plan, key.split("@")[0], "corp.example"):
            assert text.encode() not in state and text.encode("utf-16-le") not in state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4), st.sampled_from(["p1", "p2", "p3"]),
                             min_size=1, max_size=40),
       edits=st.lists(st.tuples(st.text("abcdefgh", min_size=1, max_size=4),
                                st.sampled_from(["p1", "p2", "p3", "p4", None])), max_size=15))
def test_exactly_the_new_and_changed_users_are_sent(people: Integration, walkme: FakeWalkMe,
                                                    first: dict[str, str], edits: list[tuple[str, str | None]]) -> None:
    """Random files, random edits between two runs (changed, new, removed): exactly the new and changed users
    are sent, and a third run of the same file sends nobody (the state round-trips)."""
    people = people.another()  # one fixture serves every example: each its own uid, so its own state
    people.run({key: (plan, "true") for key, plan in first.items()})
    second = dict(first)
    for key, plan in edits:
        if plan is None:
            second.pop(key, None)
        else:
            second[key] = plan
    if not second:
        return
    walkme.attributes.clear()
    result = people.run({key: (plan, "true") for key, plan in second.items()})
    expected = {key for key, plan in second.items() if first.get(key) != plan}
    assert set(walkme.users()) == expected and result.sent == len(expected), result
    assert result.users_kept == len(set(first) - set(second))
    assert people.run({key: (plan, "true") for key, plan in second.items()}).sent == 0
