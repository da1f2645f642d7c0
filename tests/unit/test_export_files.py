"""dataset exportFiles: which export files a run reads (sync/export_files.py, pure), and what plan() asks of the
export Connection before a run starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_integration_plan import NOW, SALESFORCE, WALKME, condition, inbound_spec, ready, view, wire
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.run import SyncRequest
from walkme_dic.connectors.base import ObjectInfo
from walkme_dic.jobs.manifest import credential_volumes
from walkme_dic.planning.integration import ConnectionView, plan
from walkme_dic.sync.export_files import EXPORT_SETTLE, new_files, progress

START = datetime(2026, 12, 1, tzinfo=UTC)
EXPORTS = ConnectionSpec.model_validate({"s3": {"bucket": "acme-walkme-exports", "region": "us-east-1"}})
FROM_EXPORTS = inbound_spec(
    direction="Outbound", connectionRef={"name": "crm"},
    source={"walkme": {"dataset": "exportFiles", "exportFiles": {"connectionRef": {"name": "walkme-exports"}}}},
    destination={"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "WalkMe_Id__c"}},
    mapping={"key": {"source": "User ID", "destination": "WalkMe_Id__c"}})


def planned(exports: ConnectionView | None, spec: dict[str, Any] = FROM_EXPORTS, status: dict[str, Any] | None = None,
            generation: int = 1):
    return plan(view(spec=spec, status=status, generation=generation), ready("crm", SALESFORCE),
                ready("walkme", WALKME), [], {}, NOW, exports=exports)


def test_a_run_gets_the_export_connection_only_when_it_is_a_ready_bucket() -> None:
    decision = planned(ready("walkme-exports", EXPORTS))
    assert decision.job is not None and decision.job[0].export_connection == EXPORTS
    assert wire(decision.status)["boundExportConnection"] == "walkme-exports"
    cases = [(None, "ConnectionNotFound", "Ready", "does not exist"),
             (ConnectionView(name="walkme-exports", exists=False), "ConnectionNotFound", "Ready", "does not exist"),
             (ready("walkme-exports", SALESFORCE), "ConnectionTypeMismatch", "Stalled", "salesforce connection"),
             (ConnectionView(name="walkme-exports", exists=True, spec=EXPORTS, message="bucket gone"),
              "ConnectionNotReady", "Ready", "bucket gone")]
    for exports, reason, kind, says in cases:
        decision = planned(exports)
        found = condition(decision.status, kind)
        assert decision.job is None and found["reason"] == reason, (exports, found)
        assert "spec.source.walkme.exportFiles.connectionRef" in found["message"] and says in found["message"]


def test_the_export_connection_cannot_change() -> None:
    first = planned(ready("walkme-exports", EXPORTS)).status
    moved = {**FROM_EXPORTS, "source": {"walkme": {"dataset": "exportFiles",
                                                   "exportFiles": {"connectionRef": {"name": "other"}}}}}
    decision = planned(ready("other", EXPORTS), spec=moved, status=first, generation=2)
    stalled = condition(decision.status, "Stalled")
    assert decision.job is None and stalled["reason"] == "ConnectionRefImmutable"
    assert "'walkme-exports'" in stalled["message"]


def listed(files: list[tuple[str, int]]) -> list[ObjectInfo]:
    return [ObjectInfo(path=path, size=1, fingerprint=f"etag-{path}", modified=START + timedelta(seconds=at))
            for path, at in files]


# files: (modified second, delay before it is visible, < EXPORT_SETTLE as A13 says); runs: when they list
FILES = st.lists(st.tuples(st.integers(0, 4 * 3600), st.integers(0, int(EXPORT_SETTLE.total_seconds()) - 1)),
                 max_size=25)
RUNS = st.lists(st.integers(0, 6 * 3600), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(files=FILES, runs=RUNS, failing=st.sets(st.integers(0, 7)))
def test_every_export_file_is_read_once_whenever_runs_list_and_some_fail(
    files: list[tuple[int, int]], runs: list[int], failing: set[int],
) -> None:
    """Files landing at any times (many in one second), visible a while after their timestamp, runs at any
    times, some failing: every file is read by exactly one successful run, and each by a run after it showed."""
    objects = listed([(f"usage-{n}.csv", at) for n, (at, _) in enumerate(files)])
    visible = {info.path: info.modified + timedelta(seconds=delay)  # type: ignore[operator]
               for info, (_, delay) in zip(objects, files, strict=True)}
    watermark, done, read = None, [], []
    for number, at in enumerate([*sorted(runs), 6 * 3600 + 2 * 3600]):  # a last run after everything showed
        now = START + timedelta(seconds=at)
        shown = [info for info in objects if visible[info.path] <= now]
        fresh = new_files(shown, watermark, done)
        if number in failing and number <= len(runs) - 1:
            continue  # a failed run: nothing recorded
        read += [info.path for info in fresh]
        if fresh:
            watermark, done = progress(shown, watermark)
    assert sorted(read) == sorted(info.path for info in objects)


def test_the_kept_list_is_bounded_and_moves_the_watermark_to_what_it_keeps() -> None:
    objects = listed([(f"{'x' * 200}-{n}.csv", n) for n in range(40)])
    watermark, kept = progress(objects, None)
    assert sum(len(f.path) + len(f.fingerprint) for f in kept) <= 2048
    assert kept and all(f.modified >= watermark for f in kept)  # type: ignore[operator]
    assert new_files(objects, watermark, kept) == []


def test_export_files_need_no_walkme_connection_and_every_other_source_does() -> None:
    alone = {k: v for k, v in FROM_EXPORTS.items() if k != "walkmeConnectionRef"}
    decision = plan(view(spec=alone), ready("crm", SALESFORCE), None, [], {}, NOW,
                    exports=ready("walkme-exports", EXPORTS))
    assert decision.job is not None, condition(decision.status, "Ready")
    request = decision.job[0]
    assert request.walkme_connection is None and request.export_connection == EXPORTS
    assert [v["name"] for v in credential_volumes(request)] == ["external"], "no WalkMe API key is mounted"
    assert SyncRequest.model_validate(request.to_wire()) == request, "the request the Job gets reads back"

    api = {**alone, "source": {"walkme": {"dataset": "users"}}}
    blocked = plan(view(spec=api), ready("crm", SALESFORCE), None, [], {}, NOW)
    stalled = condition(blocked.status, "Stalled")
    assert blocked.job is None and stalled["reason"] == "InvalidSpec"
    assert stalled["message"].startswith("spec.walkmeConnectionRef: name the WalkMe account Connection; only an "
                                         "Outbound integration with source.walkme.dataset exportFiles"), stalled
