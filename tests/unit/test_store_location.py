"""Which Connections reach the same objects (issue 20: two Integrations, in any namespace and through any
Connection, writing one object): connections.store_location names the store alike and gives the prefix."""

from __future__ import annotations

from typing import Any

import pytest

from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.connections import store_location

SECRET = {"secretRef": {"name": "s"}}


def located(provider: dict[str, Any]) -> tuple[str, str]:
    where = store_location(ConnectionSpec.model_validate(provider))
    assert where is not None
    return where


def key(provider: dict[str, Any], path: str) -> tuple[str, str]:
    store, prefix = located(provider)
    return store, prefix + path


def s3(prefix: str = "", endpoint: str | None = None, bucket: str = "shared") -> dict[str, Any]:
    return {"s3": {"bucket": bucket, "region": "eu-west-1", "prefix": prefix, "auth": SECRET,
                   **({"endpointUrl": endpoint} if endpoint else {})}}


def sftp(path: str, username: str = "etl") -> dict[str, Any]:
    return {"sftp": {"host": "SFTP.example.com", "username": username, "path": path, "auth": SECRET,
                     "hostKeys": ["sftp.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1kG8TzOFpIYp3KQ5bFr1a2h3k4"
                                  "l5m6n7o8p9q0r1s2"]}}


@pytest.mark.parametrize(("first", "second"), [
    ((s3("teams/"), "a/users.csv"), (s3("teams/a/"), "users.csv")),  # nested prefixes, one object
    ((s3(endpoint="https://minio.example.com"), "x.csv"), (s3(endpoint="https://MINIO.example.com/"), "x.csv")),
    ((sftp("/upload/../upload/in"), "a.csv"), (sftp("/upload"), "in/a.csv")),  # absolute folders: any user
    ((sftp("/upload", "etl"), "a.csv"), (sftp("/upload", "other"), "a.csv")),
    ((sftp("in"), "a.csv"), (sftp(""), "in/a.csv")),  # one user's login folder
])
def test_one_object_reached_two_ways_is_one_key(first: tuple[dict[str, Any], str],
                                                second: tuple[dict[str, Any], str]) -> None:
    assert key(*first) == key(*second)


@pytest.mark.parametrize(("first", "second"), [
    ((s3(), "x.csv"), (s3(bucket="other"), "x.csv")),
    ((s3(), "x.csv"), (s3(endpoint="https://minio.example.com"), "x.csv")),  # AWS is not the MinIO
    ((sftp("in"), "a.csv"), (sftp("in", "other"), "a.csv")),  # two users' login folders
    ((s3("a/"), "x.csv"), (s3("b/"), "x.csv")),
])
def test_different_objects_have_different_keys(first: tuple[dict[str, Any], str],
                                               second: tuple[dict[str, Any], str]) -> None:
    assert key(*first) != key(*second)


def test_connections_without_files_have_no_store() -> None:
    spec = ConnectionSpec.model_validate({"webhook": {"url": "https://hooks.example.com/x", "auth": SECRET}})
    assert store_location(spec) is None
