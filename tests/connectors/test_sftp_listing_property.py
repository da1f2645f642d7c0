"""SftpStore.list against a real OpenSSH sshd, for any tree of files and any prefix (hypothesis).

WalkMe's DIC export files are found by listing (sync/export_files.py); on SFTP the listing walks folders
itself, so what it must return is written down here as a model: every regular file whose path (under the
Connection's folder) starts with the prefix, none whose name or folder below the prefix's own folder starts
with a dot (an upload still under a temporary name), each once, with its size.
"""

from __future__ import annotations

import posixpath
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.connectors.test_sftp import key_login, spec
from tests.fixtures.sshd import Sshd
from walkme_dic.api.connection import SftpProvider
from walkme_dic.connectors.sftp import SftpStore

NAMES = st.sampled_from(["a", "b", "ab", ".t", "u.csv", "ü"])
PATHS = st.lists(st.lists(NAMES, min_size=1, max_size=3).map("/".join), min_size=0, max_size=8, unique=True)


def files_only(paths: list[str]) -> list[str]:
    """``paths`` without those that are a folder of another (a path is a file or a folder, not both)."""
    return [path for path in paths if not any(other.startswith(path + "/") for other in paths)]


def expected(files: dict[str, int], prefix: str) -> dict[str, int]:
    start = posixpath.dirname(prefix)
    depth = len(start.split("/")) if start else 0
    return {path: size for path, size in files.items() if path.startswith(prefix)
            and not any(part.startswith(".") for part in path.split("/")[depth:])}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(paths=PATHS.map(files_only), cut=st.integers(min_value=0, max_value=12), pick=st.integers(min_value=0),
       slash=st.booleans())
def test_a_listing_holds_exactly_the_files_under_the_prefix(sshd: Sshd, paths: list[str], cut: int, pick: int,
                                                            slash: bool) -> None:
    folder = sshd.folder()
    try:
        files = {}
        for number, path in enumerate(paths):
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"x" * number)
            files[path] = number
        base = paths[pick % len(paths)] if paths else "a/b"
        prefix = base[:cut] + ("/" if slash and cut >= len(base) and base not in files else "")
        provider: SftpProvider = spec(sshd, folder)
        store = SftpStore(provider, key_login(sshd), timeout=5)
        listed = list(store.list(prefix))
        assert {info.path: info.size for info in listed} == expected(files, prefix), prefix
        assert len(listed) == len({info.path for info in listed})
        assert all(info.modified is not None and info.fingerprint for info in listed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_missing_folder_lists_nothing(sshd: Sshd) -> None:
    folder: Path = sshd.folder()
    store = SftpStore(spec(sshd, folder), key_login(sshd), timeout=5)
    assert list(store.list("nowhere/exports/")) == []
