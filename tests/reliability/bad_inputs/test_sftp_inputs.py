"""The bad input corpus read over SFTP from a real OpenSSH sshd, and what can go wrong on the SFTP side.

Every case of test_bad_inputs.py gets the same outcome (its `check`) when the file comes from an sftp
Connection; then the SFTP-specific failures of a run (missing file or folder, a host key that changed
since the probe, a refused key) fail it with a reason and a message naming what to fix, without a
secret in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.sshd import Sshd, keygen
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from tests.reliability.bad_inputs.test_bad_inputs import IDS, PARAMETERS, Case, check, request
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.sync.credentials import CredentialSet
from walkme_dic.sync.engine import run_sync


def sftp_request(sshd: Sshd, folder: Path, walkme: FakeWalkMe, case: Case, fmt: str, **block: Any) -> SyncRequest:
    connection = ConnectionSpec.model_validate({"sftp": {
        "host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(folder),
        "hostKeys": sshd.known_hosts.splitlines(), "auth": {"secretRef": {"name": "sftp"}}, **block}})
    return request("unused", "http://unused", walkme.url, case, fmt).model_copy(update={"connection": connection})


def credentials(private_key: str) -> CredentialSet:
    return CredentialSet({"external": {"privateKey": private_key},
                          "walkme": {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET},
                          "integration-token": {"token": WALKME_TOKEN}})


@pytest.mark.parametrize(("case", "fmt"), PARAMETERS, ids=IDS)
def test_bad_input_over_sftp(case: Case, fmt: str, sshd: Sshd, walkme: FakeWalkMe) -> None:
    folder = sshd.folder()
    (folder / "in.data").write_bytes(case.body)
    check(case, run_sync(sftp_request(sshd, folder, walkme, case, fmt), credentials(sshd.keys["rsa"])), walkme)


def failed_run(sshd: Sshd, walkme: FakeWalkMe, folder: Path, key: str | None = None, **block: Any) -> SyncResult:
    result = run_sync(sftp_request(sshd, folder, walkme, Case("x", b""), "csv", **block),
                      credentials(key or sshd.keys["ed25519"]))
    assert result.result == "Failed", result
    assert "PRIVATE KEY" not in result.message
    return result


def test_missing_file_names_the_path(sshd: Sshd, walkme: FakeWalkMe) -> None:
    result = failed_run(sshd, walkme, sshd.folder())
    assert result.reason == "NotFound" and "in.data: no such file" in result.message


def test_missing_folder_names_it(sshd: Sshd, walkme: FakeWalkMe) -> None:
    result = failed_run(sshd, walkme, sshd.folder() / "gone")
    assert result.reason == "NotFound" and "/gone/in.data" in result.message


def test_host_key_changed_since_the_probe_fails_the_run(sshd: Sshd, walkme: FakeWalkMe, tmp_path: Path) -> None:
    keygen(tmp_path / "old", "-t", "ed25519")
    kind, blob = (tmp_path / "old.pub").read_text().split()[:2]
    result = failed_run(sshd, walkme, sshd.folder(), hostKeys=[f"[{sshd.host}]:{sshd.port} {kind} {blob}"])
    assert result.reason == "HostKeyRejected" and "CHANGED" in result.message


def test_a_refused_key_is_authentication_failed(sshd: Sshd, walkme: FakeWalkMe, tmp_path: Path) -> None:
    keygen(tmp_path / "k", "-t", "ecdsa", "-b", "521")
    result = failed_run(sshd, walkme, sshd.folder(), key=(tmp_path / "k").read_text())
    assert result.reason == "AuthenticationFailed" and sshd.username in result.message
