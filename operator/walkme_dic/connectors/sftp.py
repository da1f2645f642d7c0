"""SFTP with paramiko: pinned host keys, probe by writing a file, resumable prefetched reads, atomic writes.

What it does:
* Host keys are pinned: the server's key must match a known_hosts line of ``spec.sftp.hostKeys`` (or the
  Secret key ``knownHosts``) for ``HOST`` (port 22) or ``[HOST]:PORT``. Only the pinned key types are
  offered in the key exchange; an unknown host, a changed key, or a server offering none of the pinned
  types is refused (reason ``HostKeyRejected``) with the fingerprint it offered. Nothing is ever
  auto-accepted or written to a known_hosts file.
* Log-in with the Secret's ``password``, or its ``privateKey`` (RSA, ECDSA, Ed25519; OpenSSH or PEM;
  ``passphrase`` when encrypted). No agent, no ~/.ssh keys.
* The probe does what DIC does: connect, write a probe file in the connection's folder, delete it.
  A read-only folder therefore fails the probe even for inbound-only use, as in DIC.
* Reads prefetch (pipelined READ requests; without them paramiko waits one round trip per 32 KiB and
  reads ~14x slower — bench/sftp_clients.py); unread answers stay in the SSH channel, whose window (2 MiB)
  bounds the memory. After a cut connection the reader reconnects, checks the
  file's size and mtime are unchanged, and continues from its offset; a changed file fails the run
  (``SourceChanged``) instead of mixing versions.
* Writes go to ``.NAME.walkme-dic-<random>.part`` in the target folder (created when missing) with
  pipelined WRITEs, and commit() publishes with ``posix-rename@openssh.com`` over the final name (a
  plain SFTP rename onto an existing file fails on OpenSSH). abort() or any failure deletes the
  temporary file, on a new connection if the old one died; leftovers of a killed run are removed by
  the next open_write() of the same path.

What it does not (yet): resume an interrupted *upload* (the run fails and nothing is published; the
Job's retry starts over), keyboard-interactive or certificate logins, @cert-authority / @revoked
known_hosts lines, jump hosts or proxies, servers without the posix-rename extension. The fingerprint
is size + mtime (SFTP v3 has whole-second mtimes): a rewrite with the same size in the same second
is not noticed.

Why paramiko and not asyncssh: measured with bench/sftp_clients.py (100 MB over loopback to OpenSSH
9.2, 2 shared cores) paramiko uploaded at 123 MB/s against asyncssh's 104 MB/s and downloaded at
117 MB/s (prefetch) against 210 MB/s. The connectors share a synchronous interface (file objects
read by the engine's CSV reader, an AtomicWriter fed by its encoder); asyncssh would need an event
loop thread bridging every read and write. Downloads at 117 MB/s are far above what an import
consumes (CSV parsing and WalkMe batches of 100 cap inbound at a few MB/s), and uploads are faster
with paramiko, so the simpler synchronous client wins.
"""

from __future__ import annotations

import contextlib
import errno
import io
import posixpath
import socket
import stat
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paramiko
from paramiko.hostkeys import InvalidHostKey
from paramiko.ssh_exception import IncompatiblePeer

from walkme_dic import reasons
from walkme_dic.api.connection import SFTP_KNOWN_HOSTS_KEY, SftpProvider
from walkme_dic.connectors.base import BINARY, Limits, ObjectInfo, ProbeResult
from walkme_dic.connectors.common import AbortOnError, ErrorTranslator, source_changed
from walkme_dic.errors import (
    AuthenticationError,
    DestinationExistsError,
    DicError,
    NotFoundError,
    PermanentError,
    TransientError,
    UnreachableError,
)

READ_CHUNK = 1024 * 1024
RESUME_ATTEMPTS = 5
TIMEOUT = 20.0  # connect, banner and authentication
CONNECTING = "connecting"
IO_TIMEOUT = 120.0  # a server that stops answering mid-transfer: the reader reconnects, a writer fails
TEMP_MARK = ".walkme-dic-"
KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
# host key algorithms a pinned key of each type may be verified with
ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class PinnedKeys:
    """The known_hosts entries for this server, and where they came from (for messages)."""

    host_keys: paramiko.HostKeys
    server: str  # HOST or [HOST]:PORT, the name known_hosts files use
    origin: str

    @property
    def types(self) -> list[str]:
        return sorted(self.host_keys.get(self.server, {}).keys())


def server_name(spec: SftpProvider) -> str:
    """The name known_hosts lines use for the server; host names are compared lower-cased, as OpenSSH does."""
    host = spec.host.lower()
    return host if spec.port == 22 else f"[{host}]:{spec.port}"


def pinned_keys(spec: SftpProvider, credentials: Mapping[str, str]) -> PinnedKeys:
    """Parse the pinned known_hosts lines; refuse when none names this server."""
    if spec.host_keys:
        lines, origin = spec.host_keys, "spec.sftp.hostKeys"
    else:
        lines, origin = credentials.get(SFTP_KNOWN_HOSTS_KEY, "").splitlines(), f"Secret key {SFTP_KNOWN_HOSTS_KEY!r}"
    keys, hosts = paramiko.HostKeys(), []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except (paramiko.SSHException, InvalidHostKey, ValueError) as error:
            why = error.exc if isinstance(error, InvalidHostKey) else error
            raise PermanentError(f"{origin}, line {number}: not a usable known_hosts line ({why})",
                                 reason=reasons.HOST_KEY_REJECTED) from None
        if entry is None or entry.key is None:
            raise PermanentError(f"{origin}, line {number}: not a known_hosts line (want 'HOST KEYTYPE BASE64' as "
                                 "ssh-keyscan prints it)", reason=reasons.HOST_KEY_REJECTED)
        for hashed, name in ((n.startswith("|1|"), n) for n in entry.hostnames):
            keys.add(name if hashed else name.lower(), entry.key.get_name(), entry.key)
            hosts.append("(hashed)" if hashed else name)
    pinned = PinnedKeys(keys, server_name(spec), origin)
    if not pinned.types:
        found = ", ".join(dict.fromkeys(hosts)) or "no lines"
        raise PermanentError(
            f"no pinned host key for {pinned.server} in {origin} (found: {found}); add the server's keys as "
            f"`ssh-keyscan -p {spec.port} {spec.host}` prints them, after checking their fingerprints with the "
            "server's owner", reason=reasons.HOST_KEY_REJECTED)
    return pinned


def load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """An RSA, ECDSA or Ed25519 private key in OpenSSH or PEM format."""
    for kind in KEY_TYPES:
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise PermanentError("Secret key 'privateKey' is encrypted: add its passphrase under the key 'passphrase'",
                                 reason=reasons.INVALID_CREDENTIALS) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    hint = " or the passphrase is wrong" if passphrase else ""
    raise PermanentError("Secret key 'privateKey' is not an RSA, ECDSA or Ed25519 private key in OpenSSH or PEM "
                         f"format{hint}", reason=reasons.INVALID_CREDENTIALS)


def fingerprint(attributes: paramiko.SFTPAttributes) -> str:
    return f"{attributes.st_size}-{attributes.st_mtime}"


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, pinned: PinnedKeys) -> None:
        self.pinned = pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise PermanentError(f"unknown host key {key.get_name()} {key.fingerprint} offered by {hostname}: it is not "
                             f"pinned in {self.pinned.origin}; refused", reason=reasons.HOST_KEY_REJECTED)


class SftpStore:
    """One folder on an SFTP server; every path is relative to ``spec.path``."""

    def __init__(self, spec: SftpProvider, credentials: Mapping[str, str], *, timeout: float = TIMEOUT,
                 limits: Limits | None = None) -> None:
        self.spec = spec
        self.timeout = min(timeout, limits.timeout) if limits else timeout
        self.io_timeout = limits.timeout if limits else IO_TIMEOUT
        self.pinned = pinned_keys(spec, credentials)
        if credentials.get("privateKey"):
            self.login: dict[str, Any] = {"pkey": load_private_key(credentials["privateKey"],
                                                                    credentials.get("passphrase"))}
            self.secret_keys = "privateKey"
        else:
            self.login = {"password": credentials.get("password", "")}
            self.secret_keys = "password"
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # ---- connection --------------------------------------------------------------------------------

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            with self._errors(CONNECTING):
                self._connect()
        assert self._sftp is not None
        return self._sftp

    def _connect(self) -> None:
        client = paramiko.SSHClient()
        for name, entries in self.pinned.host_keys.items():
            for kind, key in entries.items():
                client.get_host_keys().add(name, kind, key)
        client.set_missing_host_key_policy(_RefuseUnknown(self.pinned))
        allowed = {algorithm for kind in self.pinned.types for algorithm in ALGORITHMS.get(kind, (kind,))}
        # paramiko lists the host key algorithms it may negotiate only in this class attribute
        disabled = [kind for kind in paramiko.Transport._preferred_keys if kind not in allowed]
        try:
            client.connect(self.spec.host.lower(), self.spec.port, self.spec.username, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout, look_for_keys=False,
                           allow_agent=False, disabled_algorithms={"keys": disabled}, **self.login)
            self._sftp = client.open_sftp()
            self._sftp.get_channel().settimeout(self.io_timeout)
        except BaseException:
            client.close()
            raise
        self._client = client

    def reset(self) -> None:
        """Drop the connection (after a failure); the next use connects again."""
        sftp, client, self._sftp, self._client = self._sftp, self._client, None, None
        with contextlib.suppress(Exception):
            if sftp is not None:
                sftp.close()
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()

    # ---- paths -------------------------------------------------------------------------------------

    def remote(self, path: str) -> str:
        return posixpath.join(self.spec.path, path.lstrip("/")) if self.spec.path else path.lstrip("/")

    def describe(self, path: str) -> str:
        remote = self.remote(path)
        return f"sftp://{self.spec.username}@{server_name(self.spec)}{'' if remote.startswith('/') else '/~/'}{remote}"

    def folder(self) -> str:
        return self.spec.path or "."

    # ---- FileStore ---------------------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        """Connect, write and delete a probe file; the connection is closed after (the operator probes
        every Connection again and again, and each paramiko connection holds a thread)."""
        folder = self.folder()
        probe = posixpath.join(folder, f".walkme-dic-probe-{uuid.uuid4().hex[:12]}")
        try:
            with self._errors(f"checking folder {folder!r}"):
                self.sftp.stat(folder)
            with self._errors(f"writing a probe file in {folder!r}"):
                with self.sftp.open(probe, "wb") as file:
                    file.write(b"walkme-dic probe\n")
                self.sftp.remove(probe)
        finally:
            self.reset()
        return ProbeResult(f"wrote and deleted a probe file in {folder!r} on {server_name(self.spec)} as "
                           f"{self.spec.username!r} (host key pinned: {', '.join(self.pinned.types)})")

    def stat(self, path: str) -> ObjectInfo:
        with self._errors(f"reading {self.describe(path)}"):
            attributes = self.sftp.stat(self.remote(path))
        return ObjectInfo(path=path, size=int(attributes.st_size or 0), fingerprint=fingerprint(attributes))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every regular file whose path starts with ``prefix``, walking the folders that can hold one; hidden
        files (a dot first: an upload still under a temporary name) are left out, and a missing folder holds
        none. A file's fingerprint is its size and mtime, as for stat()."""
        folders = [posixpath.dirname(prefix)]
        while folders:
            folder = folders.pop()
            try:
                with self._errors(f"listing {self.describe(folder)}"):
                    entries = self.sftp.listdir_attr(self.remote(folder) or ".")
            except NotFoundError:
                continue
            for entry in sorted(entries, key=lambda e: e.filename, reverse=True):
                path = posixpath.join(folder, entry.filename)
                mode = entry.st_mode or 0
                if entry.filename.startswith("."):
                    continue
                if stat.S_ISDIR(mode) and ((path + "/").startswith(prefix) or prefix.startswith(path + "/")):
                    folders.append(path)
                elif stat.S_ISREG(mode) and path.startswith(prefix):
                    yield ObjectInfo(path=path, size=int(entry.st_size or 0), fingerprint=fingerprint(entry),
                                     modified=datetime.fromtimestamp(entry.st_mtime or 0, UTC))

    def open_read(self, path: str) -> io.BufferedReader:
        return io.BufferedReader(_SftpReader(self, path, self.stat(path)), buffer_size=READ_CHUNK)

    def open_write(self, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                   part_size: int | None = None) -> SftpAtomicWriter:
        """``content_type``: SFTP keeps no metadata; the suffix is all a reader has. ``part_size``: none is held
        (the writer writes as it goes)."""
        return SftpAtomicWriter(self, path, overwrite=overwrite)

    def makedirs(self, folder: str) -> None:
        """Create ``folder`` and its missing parents (like mkdir -p)."""
        if folder in ("", ".", "/"):
            return
        try:
            self.sftp.stat(folder)
            return
        except FileNotFoundError:
            pass
        self.makedirs(posixpath.dirname(folder))
        with contextlib.suppress(OSError):  # created meanwhile by someone else: the stat below tells
            self.sftp.mkdir(folder)
        self.sftp.stat(folder)

    def remove_leftovers(self, folder: str, name: str) -> int:
        """Delete temporary files an earlier, killed attempt left for ``name`` in ``folder``."""
        mark = f".{name}{TEMP_MARK}"
        leftovers = [entry for entry in self.sftp.listdir(folder or ".") if entry.startswith(mark)
                     and entry.endswith(".part")]
        for entry in leftovers:
            with contextlib.suppress(FileNotFoundError):
                self.sftp.remove(posixpath.join(folder, entry))
        return len(leftovers)

    def _errors(self, doing: str) -> _ErrorMapper:
        return _ErrorMapper(self, doing)


class _ErrorMapper(ErrorTranslator[SftpStore]):
    """paramiko and socket errors → DicErrors naming the server, the user and what to do (never a secret)."""

    def translate(self, error: BaseException) -> None:
        spec, server = self.store.spec, server_name(self.store.spec)
        if isinstance(error, paramiko.BadHostKeyException):
            raise PermanentError(
                f"the host key of {server} CHANGED: it offered {error.key.get_name()} {error.key.fingerprint}, "
                f"pinned in {self.store.pinned.origin} is {error.expected_key.fingerprint}; refused. If the server's "
                "key was replaced on purpose, update the pinned key (ssh-keyscan) after checking it with its owner",
                reason=reasons.HOST_KEY_REJECTED) from None
        if isinstance(error, IncompatiblePeer):
            raise PermanentError(
                f"{server} offers none of the pinned host key types ({', '.join(self.store.pinned.types)}) while "
                f"{self.doing}; pin the key types the server has (ssh-keyscan -p {spec.port} {spec.host})",
                reason=reasons.HOST_KEY_REJECTED) from None
        if isinstance(error, paramiko.AuthenticationException):
            raise AuthenticationError(
                f"{server} refused user {spec.username!r} with the Secret's {self.store.secret_keys} while "
                f"{self.doing}; check the Secret (and that the public key is in the user's authorized_keys)") \
                from None
        if isinstance(error, FileNotFoundError) or getattr(error, "errno", None) == errno.ENOENT:
            raise NotFoundError(f"{self.doing}: no such file or folder on {server}") from None
        if isinstance(error, PermissionError) or getattr(error, "errno", None) == errno.EACCES:
            raise PermanentError(f"{server} denied user {spec.username!r} while {self.doing}; check the folder's "
                                 "permissions (publishing also needs the server to allow posix-rename@openssh.com)",
                                 reason=reasons.PERMISSION_DENIED) from None
        if isinstance(error, paramiko.SSHException | EOFError | OSError | socket.timeout):
            self.store.reset()
            failed = UnreachableError if self.doing == CONNECTING else TransientError  # no banner, no key exchange
            raise failed(f"cannot reach {server} while {self.doing}: {type(error).__name__}: "
                                 f"{_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else "connection lost"


class _SftpReader(io.RawIOBase):
    """Prefetched sequential reads; after a cut it reconnects and continues from its offset, same file only."""

    def __init__(self, store: SftpStore, path: str, info: ObjectInfo) -> None:
        self.store, self.path, self.info = store, path, info
        self.offset = 0
        self.file: paramiko.SFTPFile | None = None

    def readable(self) -> bool:
        return True

    def _open(self) -> paramiko.SFTPFile:
        remote, where = self.store.remote(self.path), self.store.describe(self.path)
        with self.store._errors(f"reading {where}"):
            attributes = self.store.sftp.stat(remote)
            if fingerprint(attributes) != self.info.fingerprint:
                raise source_changed(where, f"size and mtime were {self.info.fingerprint}, now "
                                            f"{fingerprint(attributes)}")
            file = self.store.sftp.open(remote, "rb")
            file.seek(self.offset)
            # paramiko's prefetch thread queues every READ request at once (small: ~40 bytes per 32 KiB), so it
            # is done before a transfer can be cut; the answers wait in the SSH channel, bounded by its window.
            file.prefetch(self.info.size)
        return file

    def readinto(self, buffer: Any) -> int:
        if self.offset >= self.info.size:
            return 0
        for _attempt in range(RESUME_ATTEMPTS):
            try:
                if self.file is None:
                    self.file = self._open()
                data = self.file.read(len(buffer))
            except (TransientError, paramiko.SSHException, EOFError, OSError):
                self._drop()
                continue
            if not data:
                raise source_changed(self.store.describe(self.path),
                                     f"it ended at byte {self.offset} of {self.info.size}")
            buffer[: len(data)] = data
            self.offset += len(data)
            return len(data)
        raise TransientError(f"reading {self.store.describe(self.path)} kept failing at byte {self.offset} "
                             f"({RESUME_ATTEMPTS} reconnects)")

    def _drop(self) -> None:
        _close_quietly(self.file)
        self.file = None
        self.store.reset()

    def close(self) -> None:
        _close_quietly(self.file)
        self.file = None
        super().close()


def _close_quietly(file: paramiko.SFTPFile | None) -> None:
    """Close a remote file whose connection may be gone: nothing more can be done about an error here."""
    with contextlib.suppress(Exception):
        if file is not None:
            file.close()


class SftpAtomicWriter:
    """Writes a temporary file next to the target; commit() posix-renames it over the target."""

    def __init__(self, store: SftpStore, path: str, *, overwrite: bool = True) -> None:
        self.store, self.path, self.overwrite = store, path, overwrite
        self.final = store.remote(path)
        folder, name = posixpath.split(self.final)
        self.temp = posixpath.join(folder, f".{name}{TEMP_MARK}{uuid.uuid4().hex[:12]}.part")
        self.size = 0
        self.file: paramiko.SFTPFile | None = None
        with store._errors(f"creating a temporary file for {store.describe(path)}"):
            store.makedirs(folder)
            store.remove_leftovers(folder, name)
            self.file = store.sftp.open(self.temp, "wb")
            self.file.set_pipelined(True)

    def write(self, data: bytes) -> int:
        with self._guard(f"uploading {self.store.describe(self.path)}"):
            assert self.file is not None, "write after commit or abort"
            self.file.write(data)
        self.size += len(data)
        return len(data)

    def commit(self) -> ObjectInfo:
        with self._guard(f"publishing {self.store.describe(self.path)}"):
            assert self.file is not None, "commit after abort"
            file, self.file = self.file, None
            file.close()  # waits for every pipelined write's answer
            if self.overwrite:
                self.store.sftp.posix_rename(self.temp, self.final)
            else:
                self._rename_unless_there()
            attributes = self.store.sftp.stat(self.final)
        return ObjectInfo(path=self.path, size=self.size, fingerprint=fingerprint(attributes))

    def _rename_unless_there(self) -> None:
        """SFTP v3 RENAME, which OpenSSH refuses (link(2): EEXIST) when the target exists: a create-only publish."""
        try:
            self.store.sftp.rename(self.temp, self.final)
        except OSError:
            try:
                self.store.sftp.stat(self.final)
            except FileNotFoundError:
                raise  # the rename failed for another reason: the error mapper says which
            raise DestinationExistsError(self.store.describe(self.path)) from None

    def abort(self) -> None:
        """Delete the temporary file, on a new connection when the old one is gone; never raises."""
        _close_quietly(self.file)
        self.file = None
        for _attempt in range(2):
            try:
                self.store.sftp.remove(self.temp)
                return
            except FileNotFoundError:
                return
            except (DicError, paramiko.SSHException, EOFError, OSError):
                self.store.reset()

    def _guard(self, doing: str) -> AbortOnError:
        return AbortOnError(self.abort, _ErrorMapper(self.store, doing))
