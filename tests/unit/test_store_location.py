"""Which Connections reach the same objects (issue 20: two Integrations, in any namespace and through any
Connection, writing one object): connections.store_location names the store alike and gives the prefix."""

from __future__ import annotations

import functools
import posixpath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import FileSettings
from walkme_dic.connectors.s3 import S3Store
from walkme_dic.connectors.sftp import SftpStore
from walkme_dic.planning.connection import store_location

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


# Generated: two Connections onto one store, each with a path the API admits. Two destinations are one
# object exactly when the stores themselves resolve them to one: S3 keys are the prefix and the path as
# written (the connector's own S3Store.key), an SFTP server resolves the connector's remote path in the
# login folder (posixpath.normpath and a leading // read as /,
# as the server's realpath does) — and store_location must say the same.
SEGMENT = st.sampled_from(["a", "b", "in", ".x", "a.b"])
PATHS = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join).flatmap(
    lambda path: st.sampled_from([path, f"/{path}"]))
ROOTS = st.lists(SEGMENT, max_size=3).map("/".join).flatmap(
    lambda root: st.sampled_from([root, f"/{root}", f"{root}/", f"/{root}/", f"/{root}/./", f"{root}//"]))
PREFIXES = st.lists(st.sampled_from(["a", "in", "a.b"]), max_size=2).map("/".join).flatmap(
    lambda prefix: st.sampled_from([prefix, f"{prefix}/"]))


def admitted(path: str) -> str:
    return FileSettings.model_validate({"path": path}).path


@functools.cache
def sftp_store(root: str, user: str) -> SftpStore:
    spec = ConnectionSpec.model_validate(sftp(root, user)).sftp
    assert spec is not None
    return SftpStore(spec, {})


@functools.cache
def s3_store(prefix: str) -> S3Store:
    spec = ConnectionSpec.model_validate(s3(prefix)).s3
    assert spec is not None
    return S3Store(spec, {})


def sftp_object(root: str, user: str, path: str) -> tuple[str, str]:
    """(whose folder, the file) the SFTP server writes for ``path`` through this Connection."""
    store = sftp_store(root, user)
    remote = posixpath.normpath(store.remote(admitted(path)))
    if remote.startswith("/"):  # an absolute path: the same file for every user ("//a" is "/a")
        return "", "/" + remote.lstrip("/")
    return store.spec.username, remote


@settings(max_examples=300, deadline=None)
@given(first=st.tuples(ROOTS, st.sampled_from(["etl", "other"]), PATHS),
       second=st.tuples(ROOTS, st.sampled_from(["etl", "other"]), PATHS))
def test_sftp_destinations_share_a_key_exactly_when_they_are_one_file(first: tuple[str, str, str],
                                                                      second: tuple[str, str, str]) -> None:
    (root, user, path), (other_root, other_user, other_path) = first, second
    one, two = sftp(root, user), sftp(other_root, other_user)
    same_file = sftp_object(root, user, path) == sftp_object(other_root, other_user, other_path)
    assert (key(one, admitted(path).lstrip("/")) == key(two, admitted(other_path).lstrip("/"))) == same_file


@settings(max_examples=300, deadline=None)
@given(first=st.tuples(PREFIXES, PATHS), second=st.tuples(PREFIXES, PATHS))
def test_s3_destinations_share_a_key_exactly_when_they_are_one_object(first: tuple[str, str],
                                                                      second: tuple[str, str]) -> None:
    (prefix, path), (other_prefix, other_path) = first, second
    one, two = s3(prefix), s3(other_prefix)
    same_object = s3_store(prefix).key(admitted(path)) == s3_store(other_prefix).key(admitted(other_path))
    assert (key(one, admitted(path).lstrip("/")) == key(two, admitted(other_path).lstrip("/"))) == same_object


@pytest.mark.parametrize("path", ["a//b.csv", "./a.csv", "a/./b.csv", "exports/", "a/../b.csv"])
def test_a_path_with_a_segment_that_is_not_a_name_is_refused(path: str) -> None:
    with pytest.raises(ValidationError, match="segment"):
        FileSettings.model_validate({"path": path})
