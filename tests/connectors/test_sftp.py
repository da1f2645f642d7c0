"""SftpStore against a real OpenSSH sshd on 127.0.0.1 (tests/fixtures/sshd.py)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.sshd import CLIENT_KEYS, KEY_PASSPHRASES, Sshd, keygen, running_sshd
from walkme_dic.api.connection import SftpProvider
from walkme_dic.connectors.sftp import SftpStore
from walkme_dic.errors import AuthenticationError, DicError, NotFoundError, PermanentError


def spec(sshd: Sshd, folder: Path | str, **overrides: object) -> SftpProvider:
    values = {"host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(folder),
              "hostKeys": sshd.known_hosts.splitlines(), "auth": {"secretRef": {"name": "sftp"}}, **overrides}
    return SftpProvider.model_validate({k: v for k, v in values.items() if v is not None})


def key_login(sshd: Sshd, name: str = "ed25519") -> dict[str, str]:
    return {"privateKey": sshd.keys[name], **({"passphrase": KEY_PASSPHRASES[name]} if name in KEY_PASSPHRASES else {})}


def store(sshd: Sshd, folder: Path, credentials: dict[str, str] | None = None, **overrides: object) -> SftpStore:
    return SftpStore(spec(sshd, folder, **overrides), credentials or key_login(sshd), timeout=5)


def scanned(sshd: Sshd, kind: str) -> list[str]:
    return [line for line in sshd.known_hosts.splitlines() if line.split()[1].startswith(kind)]


@pytest.mark.parametrize("key", list(CLIENT_KEYS))
def test_probe_writes_and_deletes_a_file_with_each_key_type(sshd: Sshd, key: str) -> None:
    folder = sshd.folder()
    message = store(sshd, folder, key_login(sshd, key)).probe().message
    assert "wrote and deleted a probe file" in message and str(folder) in message
    assert list(folder.iterdir()) == []


def test_password_login(sshd: Sshd) -> None:
    if sshd.password is None:
        pytest.skip("password logins need sshd as root in its own mount namespace (tests/fixtures/sshd.py); "
                    "CI runs as root")
    folder = sshd.folder()
    assert "probe" in store(sshd, folder, {"password": sshd.password}).probe().message
    with pytest.raises(AuthenticationError, match="refused user") as refused:
        store(sshd, folder, {"password": "wrong-" + sshd.password}).probe()
    assert sshd.password not in str(refused.value)


def test_a_key_the_server_does_not_know_is_authentication_failed(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "stranger", "-t", "ed25519")
    with pytest.raises(AuthenticationError, match=f"refused user '{sshd.username}' with the Secret's privateKey"):
        store(sshd, sshd.folder(), {"privateKey": (tmp_path / "stranger").read_text()}).probe()


@pytest.mark.parametrize("kind", ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
def test_any_one_pinned_key_type_is_enough(sshd: Sshd, kind: str) -> None:
    pinned = scanned(sshd, kind)
    assert pinned, sshd.known_hosts
    assert f"host key pinned: {kind})" in store(sshd, sshd.folder(), hostKeys=pinned).probe().message


def test_host_keys_can_come_from_the_secret_and_be_hashed(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text()
    credentials = {**key_login(sshd), "knownHosts": known.read_text()}
    assert "probe" in store(sshd, sshd.folder(), credentials, hostKeys=None).probe().message


def test_an_unknown_host_is_refused_never_accepted(sshd: Sshd) -> None:
    here = f"[{sshd.host}]:{sshd.port}"
    elsewhere = [line.replace(here, "sftp.example.com") for line in sshd.known_hosts.splitlines()]
    with pytest.raises(PermanentError, match=rf"no pinned host key for \[127.0.0.1\]:{sshd.port}.*sftp.example.com") \
            as refused:
        store(sshd, sshd.folder(), hostKeys=elsewhere).probe()
    assert refused.value.reason == "HostKeyRejected"
    assert "ssh-keyscan" in refused.value.message


@pytest.mark.parametrize(("host", "pinned_as"), [("localhost", "LocalHost"), ("LOCALHOST", "localhost")])
def test_host_names_match_their_pinned_keys_in_any_case(sshd: Sshd, host: str, pinned_as: str) -> None:
    """OpenSSH compares host names lower-cased: a key pinned for LocalHost is the key of localhost."""
    here = f"[{sshd.host}]:{sshd.port}"
    lines = [line.replace(here, f"[{pinned_as}]:{sshd.port}") for line in sshd.known_hosts.splitlines()]
    assert "probe" in store(sshd, sshd.folder(), host=host, hostKeys=lines).probe().message


def test_a_changed_host_key_is_refused_with_both_fingerprints(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "impostor", "-t", "ed25519")
    kind, blob = (tmp_path / "impostor.pub").read_text().split()[:2]
    with pytest.raises(PermanentError, match=r"CHANGED: it offered ssh-ed25519 SHA256:\S+, pinned in "
                                             r"spec.sftp.hostKeys is SHA256:") as refused:
        store(sshd, sshd.folder(), hostKeys=[f"[{sshd.host}]:{sshd.port} {kind} {blob}"]).probe()
    assert refused.value.reason == "HostKeyRejected"


@pytest.mark.parametrize(("key", "says"), [
    ("ssh-ed25519 !!!notbase64", "Invalid base64"),
    ("ssh-ed25519 AAAA", "Invalid key"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHuij2CB7ytY1lQxqaeYq4rzJdTT3g3ed6CfcJq74rmV", "Invalid key"),
    ("ssh-unknown AAAAC3NzaC1lZDI1NTE5AAAAIHuij2CB7ytY1lQxqaeYq4rzJdTT3g3ed6CfcJq74rmV", "not a known_hosts line"),
])
def test_unusable_host_key_lines_are_named(sshd: Sshd, key: str, says: str) -> None:
    lines = [*sshd.known_hosts.splitlines(), f"[{sshd.host}]:{sshd.port} {key}"]
    with pytest.raises(PermanentError, match=rf"spec.sftp.hostKeys, line {len(lines)}: .*{says}") as refused:
        store(sshd, sshd.folder(), hostKeys=lines)
    assert refused.value.reason == "HostKeyRejected"


def test_no_host_keys_at_all_is_refused(sshd: Sshd) -> None:
    with pytest.raises(PermanentError, match=r"no pinned host key .* in Secret key 'knownHosts' .found: no lines"):
        store(sshd, sshd.folder(), hostKeys=None).probe()


@pytest.mark.parametrize(("credentials", "says"), [
    ({"privateKey": "not a key"}, "is not an RSA, ECDSA or Ed25519 private key"),
    ({"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"},
     "is not an RSA, ECDSA or Ed25519"),
    ("encrypted, no passphrase", "is encrypted: add its passphrase"),
    ("encrypted, wrong passphrase", "or the passphrase is wrong"),
])
def test_unusable_private_keys_are_named(sshd: Sshd, credentials: dict[str, str] | str, says: str) -> None:
    if credentials == "encrypted, no passphrase":
        credentials = {"privateKey": sshd.keys["ed25519-passphrase"]}
    elif credentials == "encrypted, wrong passphrase":
        credentials = {"privateKey": sshd.keys["ed25519-passphrase"], "passphrase": "nope"}
    with pytest.raises(PermanentError, match=says) as refused:
        store(sshd, sshd.folder(), dict(credentials))
    assert "BEGIN" not in refused.value.message


def test_a_missing_folder_fails_the_probe(sshd: Sshd) -> None:
    with pytest.raises(NotFoundError, match=r"checking folder .*no-such-folder"):
        store(sshd, sshd.folder() / "no-such-folder").probe()


def test_unreachable_server_is_transient(sshd: Sshd) -> None:
    from tests.fixtures.servers import free_port

    port = free_port()
    hosts = [line.replace(str(sshd.port), str(port)) for line in sshd.known_hosts.splitlines()]
    with pytest.raises(DicError, match=f"cannot reach \\[127.0.0.1\\]:{port} while connecting") as failed:
        store(sshd, sshd.folder(), port=port, hostKeys=hosts).probe()
    assert failed.value.reason == "TransientError"


def test_read_prefetches_every_byte_and_stat_fingerprints(sshd: Sshd) -> None:
    folder = sshd.folder()
    payload = os.urandom(5 * 1024 * 1024 + 77)
    (folder / "in.bin").write_bytes(payload)
    sftp = store(sshd, folder)
    info = sftp.stat("in.bin")
    mtime = int((folder / "in.bin").stat().st_mtime)
    assert (info.size, info.fingerprint) == (len(payload), f"{len(payload)}-{mtime}")
    with sftp.open_read("in.bin") as stream:
        assert stream.read() == payload
    with pytest.raises(NotFoundError, match=r"missing\.csv: no such file"):
        sftp.stat("missing.csv")


def test_write_is_invisible_until_commit_then_replaces_the_old_file(sshd: Sshd) -> None:
    folder = sshd.folder()
    (folder / "out").mkdir()
    (folder / "out" / "export.csv").write_bytes(b"old version\n")
    payload = os.urandom(3 * 1024 * 1024 + 5)
    writer = store(sshd, folder).open_write("out/export.csv")
    for start in range(0, len(payload), 1024 * 1024):
        writer.write(payload[start:start + 1024 * 1024])
    assert (folder / "out" / "export.csv").read_bytes() == b"old version\n"
    info = writer.commit()
    assert (folder / "out" / "export.csv").read_bytes() == payload, "posix-rename replaced the existing file"
    assert info.size == len(payload)
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["export.csv"]


def test_write_creates_missing_folders(sshd: Sshd) -> None:
    folder = sshd.folder()
    writer = store(sshd, folder).open_write("a/b/c/export.csv")
    writer.write(b"id\n1\n")
    writer.commit()
    assert (folder / "a" / "b" / "c" / "export.csv").read_bytes() == b"id\n1\n"


def test_abort_leaves_nothing_and_leftovers_of_a_killed_run_are_removed(sshd: Sshd) -> None:
    folder = sshd.folder()
    writer = store(sshd, folder).open_write("export.csv")
    writer.write(b"half of it")
    assert len(list(folder.iterdir())) == 1
    writer.abort()
    assert list(folder.iterdir()) == []
    (folder / ".export.csv.walkme-dic-0123456789ab.part").write_bytes(b"killed run")
    (folder / ".other.csv.walkme-dic-0123456789ab.part").write_bytes(b"another path's upload")
    writer = store(sshd, folder).open_write("export.csv")
    writer.write(b"id\n")
    writer.commit()
    assert sorted(p.name for p in folder.iterdir()) == [".other.csv.walkme-dic-0123456789ab.part", "export.csv"]


def test_relative_folder_is_under_the_login_folder(sshd: Sshd) -> None:
    if sshd.password is None:
        pytest.skip("the login folder of the current user is its real home; not written to by tests")
    home = sshd.root.parent  # the password user's home is the server's temporary directory
    relative = sshd.folder().relative_to(home)
    sftp = store(sshd, relative)
    assert sftp.describe("x.csv") == f"sftp://{sshd.username}@[127.0.0.1]:{sshd.port}/~/{relative}/x.csv"
    assert "probe" in sftp.probe().message


def test_probe_closes_its_connection(sshd: Sshd) -> None:
    before = threading.active_count()
    for _ in range(3):
        store(sshd, sshd.folder()).probe()
    deadline = time.monotonic() + 5  # a closed transport's thread ends on its own, shortly after
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before, "a paramiko transport thread was left running"


def test_a_refused_rename_publishes_nothing_and_removes_the_temporary_file(sshd: Sshd) -> None:
    with running_sshd("-P posix-rename") as strict:  # this server refuses posix-rename@openssh.com
        folder = strict.folder()
        (folder / "export.csv").write_bytes(b"the previous export\n")
        writer = store(strict, folder).open_write("export.csv")
        writer.write(b"id\n1\n")
        with pytest.raises(PermanentError, match=r"while publishing sftp://.*/export\.csv.*posix-rename"):
            writer.commit()
        assert sorted(p.name for p in folder.iterdir()) == ["export.csv"]
        assert (folder / "export.csv").read_bytes() == b"the previous export\n"
