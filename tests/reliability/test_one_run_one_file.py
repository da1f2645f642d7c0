"""One run, one file (issue 25, row 1): an incremental export (``since: lastRun``) never replaces a file an
earlier run wrote — its rows are in no other file — on every file store: the run fails with
DestinationExists, the file keeps the first run's rows, and the watermark stays so the next run exports
the rows. A full export (a fixed ``since`` time) is a complete snapshot each time and replaces its file.
The create-only condition itself (S3 If-None-Match, Azure If-None-Match, SFTP RENAME) is checked with two
writers for one path. And files that say what they are: each object's Content-Type (row 6)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.fixtures.gcs import gcs_client
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from tests.reliability.test_directions import BY_NAME, GOOD, Direction, Stores, request
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.run import SyncResult
from walkme_dic.connectors.registry import open_file_store
from walkme_dic.errors import DestinationExistsError
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync

FILE_EXPORTS = ["WalkMe → S3", "WalkMe → Azure", "WalkMe → SFTP", "WalkMe → GCS"]
LATER = [{"id": "p3", "email": "p3@acme.example"}]
EVERYTHING = "2020-01-01T00:00:00Z"  # a fixed since: every run exports every record since then, a full snapshot


def export(direction: Direction, stores: Stores, since: str, watermark: str | None) -> SyncResult:
    connection, external = direction.side(stores)
    source = {"walkme": {"dataset": "users", "since": since}}
    sync = request(replace(direction, source=source, destination={"file": {"path": "out/people.csv"}}),
                   stores, connection)
    sync = sync.model_copy(update={"state": sync.state.model_copy(update={"watermark": watermark})})
    credentials = CredentialSet({"external": external,
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                                 "integration-token": {"token": WALKME_TOKEN}})
    return run_sync(sync, credentials)


@pytest.mark.parametrize("name", FILE_EXPORTS)
def test_an_incremental_export_never_replaces_an_earlier_runs_file(name: str, stores: Stores) -> None:
    direction = BY_NAME[name]
    direction.put(stores, GOOD)
    first = export(direction, stores, "lastRun", None)
    assert first.result == "Succeeded" and first.watermark, first
    before = direction.got(stores)
    direction.put(stores, LATER)  # new rows arrive; the path names the same file (as {date} does all day)
    second = export(direction, stores, "lastRun", first.watermark)
    assert (second.result, second.reason) == ("Failed", "DestinationExists"), second
    assert "{runId}" in second.message and "already exists" in second.message
    assert second.watermark is None, "the watermark stays: the next run exports these rows"
    assert direction.got(stores) == before, "the first run's rows are still there"


@pytest.mark.parametrize("name", FILE_EXPORTS)
def test_a_full_export_replaces_its_snapshot(name: str, stores: Stores) -> None:
    direction = BY_NAME[name]
    direction.put(stores, GOOD)
    assert export(direction, stores, EVERYTHING, None).result == "Succeeded"
    direction.put(stores, LATER)
    again = export(direction, stores, EVERYTHING, None)
    assert again.result == "Succeeded", again
    assert sorted(direction.got(stores), key=lambda p: p["id"]) == [*GOOD, *LATER], "the new snapshot replaced it"


def store_of(direction: Direction, stores: Stores) -> Any:
    connection, external = direction.side(stores)
    return open_file_store(ConnectionSpec.model_validate(connection), external)


@pytest.mark.parametrize("name", ["WalkMe → S3", "WalkMe → Azure", "WalkMe → SFTP"])
@pytest.mark.parametrize("size", [10, 6 * 1024 * 1024], ids=["one request", "in parts"])
def test_a_create_only_write_refuses_at_commit_an_object_that_exists(name: str, size: int, stores: Stores) -> None:
    """The store's own condition at commit, not the engine's look before the export."""
    store = store_of(BY_NAME[name], stores)
    early = store.open_write("race.bin", overwrite=False)
    early.write(b"a" * size)
    early.commit()
    late = store.open_write("race.bin", overwrite=False)
    late.write(b"b" * size)
    with pytest.raises(DestinationExistsError) as refused:
        late.commit()
    assert refused.value.reason == "DestinationExists"
    with store.open_read("race.bin") as published:
        assert published.read(1) == b"a"


def stored_content_type(name: str, stores: Stores, key: str) -> str:
    if name == "WalkMe → S3":
        return s3_client(stores.moto).head_object(Bucket=stores.bucket, Key=key)["ContentType"]
    if name == "WalkMe → Azure":
        return stores.blobs.get_blob_client(key).get_blob_properties().content_settings.content_type
    return gcs_client(stores.gcs).bucket(stores.gcs_bucket).get_blob(key).content_type


@pytest.mark.parametrize("name", ["WalkMe → S3", "WalkMe → Azure", "WalkMe → GCS"])
@pytest.mark.parametrize(("settings", "expected"), [
    ({"path": "out/people.csv"}, "text/csv; charset=utf-8"),
    ({"path": "out/people.jsonl", "format": "jsonl", "encoding": "latin-1"}, "application/x-ndjson; charset=latin-1"),
    ({"path": "out/people.csv.gz", "compression": "gzip"}, "application/gzip"),
], ids=["csv", "jsonl", "gzip"])
def test_exported_objects_say_what_they_are(name: str, settings: dict, expected: str, stores: Stores) -> None:
    direction = BY_NAME[name]
    direction.put(stores, GOOD)
    connection, external = direction.side(stores)
    sync = request(replace(direction, source={"walkme": {"dataset": "users", "since": EVERYTHING}},
                           destination={"file": settings}), stores, connection)
    credentials = CredentialSet({"external": external,
                                 "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}})
    assert run_sync(sync, credentials).result == "Succeeded"
    assert stored_content_type(name, stores, settings["path"]) == expected
