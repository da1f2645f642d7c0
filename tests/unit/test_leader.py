"""Leader election decisions (who may write the Lease) without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from walkme_dic.leader import ElectionTiming, Observation, claim, micro_time

TIMING = ElectionTiming(duration=15, renew_deadline=10, retry=2)
NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def lease(holder: str | None, transitions: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": "walkme-dic-operator", "resourceVersion": "7"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": transitions,
                     "acquireTime": "2026-11-26T11:00:00.000000Z", "renewTime": "2026-11-26T11:59:59.000000Z"}}


def test_no_lease_yet_is_taken() -> None:
    spec = claim(Observation(None, 0), "a", TIMING, NOW)
    assert spec == {"holderIdentity": "a", "acquireTime": micro_time(NOW), "renewTime": micro_time(NOW),
                    "leaseDurationSeconds": 15, "leaseTransitions": 0}


@pytest.mark.parametrize("unchanged_for", [0, 1, 14.9])
def test_another_holders_fresh_lease_is_left_alone(unchanged_for: float) -> None:
    assert claim(Observation(lease("b"), unchanged_for), "a", TIMING, NOW) is None


@pytest.mark.parametrize("unchanged_for", [15, 16, 3600])
def test_a_lease_unchanged_for_its_duration_is_taken_over(unchanged_for: float) -> None:
    spec = claim(Observation(lease("b", transitions=3), unchanged_for), "a", TIMING, NOW)
    assert spec is not None
    assert (spec["holderIdentity"], spec["leaseTransitions"], spec["acquireTime"]) == ("a", 4, micro_time(NOW))


@pytest.mark.parametrize("released", [None, ""])
def test_a_released_lease_is_taken_at_once(released: str | None) -> None:
    spec = claim(Observation(lease(released, transitions=1), 0), "a", TIMING, NOW)
    assert spec is not None and spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 2


@pytest.mark.parametrize("unchanged_for", [0, 100])
def test_the_holder_renews_without_a_transition(unchanged_for: float) -> None:
    spec = claim(Observation(lease("a", transitions=2), unchanged_for), "a", TIMING, NOW)
    assert spec is not None
    assert spec["renewTime"] == micro_time(NOW)
    assert (spec["acquireTime"], spec["leaseTransitions"]) == ("2026-11-26T11:00:00.000000Z", 2)


@pytest.mark.parametrize(("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 20, 2), (15, 10, 0)])
def test_timing_must_let_the_leader_give_up_before_others_take_over(
    duration: float, deadline: float, retry: float,
) -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        ElectionTiming(duration=duration, renew_deadline=deadline, retry=retry)
