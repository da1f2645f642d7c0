"""Google Cloud Storage with google-cloud-storage: probe, stat, generation-pinned reads, atomic resumable writes.

What it does:

* Credentials: a service-account JSON key from the Secret key ``auth.secretRef.key``; without a Secret,
  Application Default Credentials (GKE workload identity, the metadata server, GOOGLE_APPLICATION_CREDENTIALS).
  ``auth.anonymous`` sends no credentials and is accepted only with ``endpointUrl`` (emulators): against
  Google it would silently reach only public buckets, so the API refuses it there.
* Probe: ``testIamPermissions`` on the bucket. It needs no permission of its own (an Object Viewer key
  cannot read bucket metadata, so ``buckets.get`` would refuse a perfectly good inbound key), answers 404
  for a missing bucket and 401/403 for bad credentials, writes nothing, and says which of read
  (objects.get + list) and write (objects.create + delete) the key has. A Connection does not know which
  directions its Integrations use, so the probe passes when at least one of them is granted and the
  message names the direction that would fail. Chosen over writing and deleting a probe object because
  that would demand write rights from read-only (inbound) keys and leave a trace when the delete is denied.
* Reads: pinned to the object's generation. Each chunk is a ranged GET of ``generation=<pinned>``; Google
  answers 404 once that generation is overwritten, and every chunk's ``x-goog-generation`` is compared, so
  a changed object fails the run with SourceChanged instead of mixing versions. Servers that send no
  generation header (emulators) get a metadata check after each chunk instead. A dropped connection
  retries the same range (the library's retry, then ours), so a cut resumes where it stopped.
* Writes: one resumable upload session (``BlobWriter``) fed in 16 MiB chunks; the object appears only when
  the session is finalized in ``commit()``. ``abort()`` terminates the writer without finalizing (so not
  even garbage collection can publish it); an unfinished session is invisible and expires after a week,
  as does the one a killed process leaves.

What it does not do (yet): customer-supplied encryption keys, requester-pays buckets, HMAC (S3-style)
keys, object holds/retention, and composite uploads in parallel (one session is sequential; see bench).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.fileio import BlobWriter
from google.cloud.storage.retry import DEFAULT_RETRY

from walkme_dic import reasons
from walkme_dic.api.connection import GcsProvider
from walkme_dic.connectors.base import BINARY, Limits, ObjectInfo, ProbeResult
from walkme_dic.connectors.common import ErrorTranslator, refuse_redirects, source_changed
from walkme_dic.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotFoundError,
    PermanentError,
    TransientError,
)

# A multiple of 256 KiB, as resumable uploads require. Chunks go one after another, so each costs a round
# trip: 16 MiB (S3's part size too) keeps that small against Google at the price of one chunk of memory.
CHUNK_SIZE = 16 * 1024 * 1024
CHUNK_UNIT = 256 * 1024  # a resumable upload's chunks are multiples of it
READ_CHUNK = 8 * 1024 * 1024
RESUME_ATTEMPTS = 5
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
READ_PERMISSIONS = ("storage.objects.get", "storage.objects.list")
WRITE_PERMISSIONS = ("storage.objects.create", "storage.objects.delete")
TRANSIENT = (api_exceptions.TooManyRequests, api_exceptions.ServerError, api_exceptions.RetryError,
             requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, ConnectionError)


def _credentials(spec: GcsProvider, credentials: Mapping[str, str]) -> tuple[Any, str | None]:
    """(google-auth credentials, project) for the Connection's auth block."""
    ref = spec.auth.secret_ref
    if ref is not None:
        from google.oauth2 import service_account

        try:
            info = json.loads(credentials.get(ref.key, ""))
            key = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (ValueError, TypeError, AttributeError):
            raise PermanentError(
                f"Secret key {ref.key!r} is not a service-account JSON key (expected the JSON file Google Cloud "
                "creates for a service account, with type, client_email, private_key and token_uri)",
                reason=reasons.INVALID_CREDENTIALS) from None
        return key, info.get("project_id")
    if spec.auth.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), "anonymous"
    import google.auth

    try:
        return google.auth.default(scopes=[SCOPE])
    except auth_exceptions.DefaultCredentialsError:
        raise AuthenticationError(
            "no Application Default Credentials found for GCS: set gcs.auth.secretRef to a Secret key holding a "
            "service-account JSON key, or run the operator and sync Jobs with workload identity") from None


class GcsStore:
    """One bucket; every path is relative to the Connection's prefix."""

    def __init__(self, spec: GcsProvider, credentials: Mapping[str, str], *, chunk_size: int = CHUNK_SIZE,
                 retry: Retry = DEFAULT_RETRY, limits: Limits | None = None) -> None:
        self.spec = spec
        self.chunk_size = chunk_size
        self.retry = retry.with_timeout(limits.timeout) if limits else retry
        self.timeout = (limits.connect_timeout, limits.timeout) if limits else (60.0, 60.0)
        self.secret_key = spec.auth.secret_ref.key if spec.auth.secret_ref else None
        auth, project = _credentials(spec, credentials)
        options = {"api_endpoint": spec.endpoint_url} if spec.endpoint_url else None
        self.client = storage.Client(project=project, credentials=auth, client_options=options)
        self.client._http.hooks["response"].append(refuse_redirects)
        self.bucket = self.client.bucket(spec.bucket)

    def name(self, path: str) -> str:
        return f"{self.spec.prefix}{path.lstrip('/')}"

    def describe(self, path: str) -> str:
        return f"gs://{self.spec.bucket}/{self.name(path)}"

    def probe(self) -> ProbeResult:
        with self._errors("reaching bucket"):
            granted = set(self.bucket.test_iam_permissions([*READ_PERMISSIONS, *WRITE_PERMISSIONS],
                                                           retry=self.retry, timeout=self.timeout))
        can_read, can_write = set(READ_PERMISSIONS) <= granted, set(WRITE_PERMISSIONS) <= granted
        if not (can_read or can_write):
            raise AuthenticationError(
                f"the credentials may neither read nor write objects in bucket {self.spec.bucket!r} (missing "
                f"{', '.join(sorted(set(READ_PERMISSIONS + WRITE_PERMISSIONS) - granted))}); grant "
                "roles/storage.objectViewer for Inbound, roles/storage.objectUser for Outbound")
        where = f"bucket {self.spec.bucket!r} is reachable"
        if can_read and can_write:
            return ProbeResult(f"{where}; the credentials may read (Inbound) and write (Outbound) objects")
        missing = sorted(set(WRITE_PERMISSIONS if can_read else READ_PERMISSIONS) - granted)
        only, fails = ("read (Inbound)", "Outbound") if can_read else ("write (Outbound)", "Inbound")
        return ProbeResult(f"{where}; the credentials may only {only}: {fails} integrations will fail "
                           f"(missing {', '.join(missing)})")

    def stat(self, path: str) -> ObjectInfo:
        with self._errors(f"reading {self.describe(path)}"):
            blob = self.bucket.get_blob(self.name(path), retry=self.retry)
        if blob is None:
            raise NotFoundError(f"reading {self.describe(path)}: the object does not exist")
        return ObjectInfo(path=path, size=int(blob.size or 0), fingerprint=str(blob.generation))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        cut = len(self.spec.prefix)
        with self._errors(f"listing bucket objects {self.describe(prefix)}*"):
            for blob in self.client.list_blobs(self.bucket, prefix=self.name(prefix), retry=self.retry,
                                               timeout=self.timeout):
                yield ObjectInfo(path=blob.name[cut:], size=int(blob.size or 0), fingerprint=str(blob.generation),
                                 modified=blob.updated)

    def open_read(self, path: str) -> io.BufferedReader:
        info = self.stat(path)
        return io.BufferedReader(_GcsReader(self, path, info), buffer_size=READ_CHUNK)

    def open_write(self, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                   part_size: int | None = None) -> GcsAtomicWriter:
        chunk = -(-part_size // CHUNK_UNIT) * CHUNK_UNIT if part_size else self.chunk_size
        return GcsAtomicWriter(self, path, overwrite=overwrite, content_type=content_type, chunk_size=chunk)

    def _errors(self, doing: str) -> _ErrorMapper:
        return _ErrorMapper(self, doing)


class _ErrorMapper(ErrorTranslator["GcsStore"]):
    """google-api-core / google-auth / requests errors → DicErrors a person can act on (never a secret)."""

    def translate(self, error: BaseException) -> None:
        bucket = self.store.spec.bucket
        status = error.response.status_code if isinstance(error, InvalidResponse) else None  # the media layer's
        if isinstance(error, api_exceptions.Unauthorized | api_exceptions.Forbidden | auth_exceptions.RefreshError) \
                or status in (401, 403):
            where = f"the Secret key {self.store.secret_key!r}" if self.store.secret_key else \
                "the workload identity / Application Default Credentials"
            raise AuthenticationError(f"GCS refused the credentials while {self.doing} (bucket {bucket!r}, "
                                      f"{status or type(error).__name__}); check {where} and the bucket's IAM "
                                      "bindings") from None
        if isinstance(error, api_exceptions.NotFound):
            if "bucket" in self.doing:
                raise NotFoundError(f"bucket {bucket!r} does not exist (while {self.doing})") from None
            raise NotFoundError(f"{self.doing}: the object does not exist") from None
        if isinstance(error, (*TRANSIENT, auth_exceptions.TransportError)):
            raise TransientError(f"GCS kept failing while {self.doing}: {type(error).__name__} (retries "
                                 "exhausted)") from None
        if status is not None:
            raise PermanentError(f"GCS answered HTTP {status} while {self.doing}") from None
        if isinstance(error, api_exceptions.GoogleAPICallError):
            raise PermanentError(f"GCS error while {self.doing}: {error.code} {type(error).__name__}") from None


class _GcsReader(io.RawIOBase):
    """Ranged chunks of one generation; a different or vanished generation fails the read (SourceChanged)."""

    def __init__(self, store: GcsStore, path: str, info: ObjectInfo) -> None:
        self.store, self.path, self.info = store, path, info
        self.generation = int(info.fingerprint)
        self.offset = 0
        self.pending = b""

    def readable(self) -> bool:
        return True

    def _changed(self) -> PermanentError:
        return source_changed(self.store.describe(self.path), f"generation {self.generation} is gone")

    def _chunk(self) -> bytes:
        end = min(self.offset + READ_CHUNK, self.info.size) - 1
        for _attempt in range(RESUME_ATTEMPTS):
            blob = self.store.bucket.blob(self.store.name(self.path), generation=self.generation)
            try:
                data = blob.download_as_bytes(start=self.offset, end=end, checksum=None, retry=self.store.retry)
            except api_exceptions.NotFound:
                raise self._changed() from None
            except TRANSIENT:
                continue
            except Exception as error:
                self.store._errors(f"reading {self.store.describe(self.path)}").translate(error)
                raise
            served = blob.generation
            if served is None:  # no x-goog-generation header (emulators): ask for the live generation instead
                served = int(self.store.stat(self.path).fingerprint)
            if int(served) != self.generation:
                raise self._changed()
            if len(data) == end - self.offset + 1:
                return data
        raise TransientError(f"reading {self.store.describe(self.path)} kept failing at byte {self.offset}")

    def readinto(self, buffer: Any) -> int:
        if not self.pending:
            if self.offset >= self.info.size:
                return 0
            self.pending = self._chunk()
            self.offset += len(self.pending)
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


class GcsAtomicWriter:
    """One resumable upload session: nothing is visible until commit() finalizes it; abort() ends it unfinalized."""

    def __init__(self, store: GcsStore, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                 chunk_size: int | None = None) -> None:
        self.store, self.path, self.overwrite = store, path, overwrite
        self.blob = store.bucket.blob(store.name(path))
        # ifGenerationMatch=0: Cloud Storage finalizes the upload only if no live object has the name
        # (the emulator of the tests ignores it; the engine's check before the export is what they see)
        condition = {} if overwrite else {"if_generation_match": 0}
        self.writer = BlobWriter(self.blob, chunk_size=chunk_size or store.chunk_size, retry=store.retry,
                                 content_type=content_type, **condition)
        self.total = 0

    def write(self, data: bytes) -> int:
        with self.store._errors(f"uploading {self.store.describe(self.path)}"):
            self.writer.write(data)
        self.total += len(data)
        return len(data)

    def commit(self) -> ObjectInfo:
        with self.store._errors(f"finalizing {self.store.describe(self.path)}"):
            try:
                self.writer.close()
            except (api_exceptions.PreconditionFailed, InvalidResponse) as error:
                status = getattr(getattr(error, "response", None), "status_code", None)
                if self.overwrite or not (isinstance(error, api_exceptions.PreconditionFailed) or status == 412):
                    raise
                raise DestinationExistsError(self.store.describe(self.path)) from None
            self.blob.reload(retry=self.store.retry)  # BlobWriter keeps the finalize answer to itself
        return ObjectInfo(path=self.path, size=self.total, fingerprint=str(self.blob.generation or ""))

    def abort(self) -> None:
        """Close the session without finalizing it: nothing becomes visible, and a later close() cannot publish."""
        try:
            self.writer.terminate()
        except requests.RequestException:
            return  # the unfinished session stays invisible and expires after a week
