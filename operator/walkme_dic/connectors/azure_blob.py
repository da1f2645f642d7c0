"""Azure Blob Storage: probe, stat, chunked reads, block-list writes committed once (nothing visible before).

Blocks are staged on background threads while the sync encodes the next one (``background.py`` says how many,
what that costs in memory, and why sharing one BlobClient between those threads is safe)."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient, ContentSettings, ExponentialRetry

from walkme_dic import reasons
from walkme_dic.api.connection import AzureBlobProvider
from walkme_dic.connectors.background import IN_FLIGHT, BackgroundPartWriter
from walkme_dic.connectors.base import BINARY, Limits, ObjectInfo, ProbeResult
from walkme_dic.connectors.common import ErrorTranslator, etag_gone, redirect_refusal, source_changed
from walkme_dic.errors import (
    AuthenticationError,
    DestinationExistsError,
    NotFoundError,
    PermanentError,
    TransientError,
)

BLOCK_SIZE = 8 * 1024 * 1024
READ_CHUNK = 4 * 1024 * 1024


def _credential_kind(value: str) -> str:
    if "AccountKey=" in value or "SharedAccessSignature=" in value or "UseDevelopmentStorage" in value:
        return "connection-string"
    if value.lstrip("?").startswith("sv="):
        return "sas"
    return "unknown"


class AzureBlobStore:
    """One container; every path is relative to the Connection's prefix."""

    def __init__(self, spec: AzureBlobProvider, credentials: Mapping[str, str], *, block_size: int = BLOCK_SIZE,
                 retry_total: int = 5, retry_backoff_factor: float = 0.8, limits: Limits | None = None) -> None:
        self.spec = spec
        self.block_size = block_size
        backoff = retry_backoff_factor * 10 if limits is None else min(retry_backoff_factor * 10, limits.timeout / 4)
        limits = limits or Limits(timeout=60, attempts=retry_total + 1)
        retry = ExponentialRetry(initial_backoff=backoff, increment_base=2,
                                 retry_total=limits.attempts - 1,
                                 random_jitter_range=1 if retry_backoff_factor >= 0.1 else 0)
        options: dict[str, Any] = {"retry_policy": retry, "connection_timeout": limits.connect_timeout,
                                   "read_timeout": limits.timeout, "permit_redirects": False}
        ref = spec.auth.secret_ref
        if ref is not None:
            self.secret_key = ref.key
            value = credentials.get(ref.key, "")
            kind = _credential_kind(value)
            if kind == "connection-string":
                service = BlobServiceClient.from_connection_string(value, **options)
            elif kind == "sas":
                service = BlobServiceClient(account_url=spec.account_url, credential=value.lstrip("?"), **options)
            else:
                raise PermanentError(f"Secret key {ref.key!r} holds neither a storage connection string nor a SAS "
                                     "token (sv=...)", reason=reasons.INVALID_CREDENTIALS)
        else:
            from azure.identity import DefaultAzureCredential

            self.secret_key = "workload identity"
            service = BlobServiceClient(account_url=spec.account_url, credential=DefaultAzureCredential(), **options)
        self.container: ContainerClient = service.get_container_client(spec.container)

    def name(self, path: str) -> str:
        return f"{self.spec.prefix}{path.lstrip('/')}"

    def describe(self, path: str) -> str:
        return f"{self.container.url.rstrip('/')}/{self.name(path)}"

    def probe(self) -> ProbeResult:
        with self._errors("reaching the container"):
            self.container.get_container_properties()
        return ProbeResult(f"container {self.spec.container!r} at {self.spec.account_url} is reachable")

    def stat(self, path: str) -> ObjectInfo:
        with self._errors(f"reading {self.describe(path)}"):
            properties = self.container.get_blob_client(self.name(path)).get_blob_properties()
        return ObjectInfo(path=path, size=int(properties.size), fingerprint=str(properties.etag).strip('"'))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        cut = len(self.spec.prefix)
        with self._errors(f"listing the container's blobs {self.describe(prefix)}*"):
            for blob in self.container.list_blobs(name_starts_with=self.name(prefix)):
                yield ObjectInfo(path=blob.name[cut:], size=int(blob.size), fingerprint=str(blob.etag).strip('"'),
                                 modified=blob.last_modified)

    def open_read(self, path: str) -> io.BufferedReader:
        info = self.stat(path)
        return io.BufferedReader(_BlobReader(self, path, info), buffer_size=READ_CHUNK)

    def open_write(self, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                   part_size: int | None = None) -> AzureAtomicWriter:
        return AzureAtomicWriter(self, path, overwrite=overwrite, content_type=content_type, block_size=part_size)

    def _errors(self, doing: str) -> _ErrorMapper:
        return _ErrorMapper(self, doing)


class _ErrorMapper(ErrorTranslator[AzureBlobStore]):
    """azure-core errors → DicErrors with a message a person can act on (never a secret)."""

    def translate(self, error: BaseException) -> None:
        container = self.store.spec.container
        if isinstance(error, ClientAuthenticationError) or getattr(error, "status_code", None) == 403:
            raise AuthenticationError(f"Azure refused the credentials for container {container!r} while {self.doing}; "
                                      f"check the Secret key {self.store.secret_key!r}") from None
        if isinstance(error, ResourceNotFoundError):
            code = getattr(error, "error_code", "") or ""
            if "Container" in str(code) or "container" in self.doing:
                raise NotFoundError(f"container {container!r} does not exist (while {self.doing})") from None
            raise NotFoundError(f"{self.doing}: the blob does not exist") from None
        if isinstance(error, ServiceRequestError | ServiceResponseError):
            raise TransientError(f"cannot reach Azure Blob Storage while {self.doing}: {type(error).__name__}") \
                from None
        if isinstance(error, HttpResponseError):
            response = getattr(error, "response", None)
            status = error.status_code or (getattr(response, "status_code", 0) if response is not None else 0)
            code = getattr(error, "error_code", None) or status
            if status >= 500:
                raise TransientError(f"Azure kept failing while {self.doing}: {code} (retries exhausted)") from None
            if 300 <= status < 400 and response is not None:  # not followed: permit_redirects=False
                raise redirect_refusal(self.store.container.url, status, response.headers.get("Location")) from None
            raise PermanentError(f"Azure error while {self.doing}: {code}") from None


class _BlobReader(io.RawIOBase):
    """Reads a blob in ranged chunks pinned to its ETag, so a changed blob (412 ConditionNotMet) or a deleted one
    (404) fails the read with SourceChanged instead of mixing versions."""

    def __init__(self, store: AzureBlobStore, path: str, info: ObjectInfo) -> None:
        self.store, self.path, self.info = store, path, info
        self.offset = 0
        self.pending = b""
        self.blob = store.container.get_blob_client(store.name(path))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.pending:
            if self.offset >= self.info.size:
                return 0
            length = min(READ_CHUNK, self.info.size - self.offset)
            with self.store._errors(f"reading {self.store.describe(self.path)}"):
                try:
                    self.pending = self.blob.download_blob(offset=self.offset, length=length,
                                                           etag=f'"{self.info.fingerprint}"',
                                                           match_condition=_if_match()).readall()
                except ResourceModifiedError:
                    raise source_changed(self.store.describe(self.path), etag_gone(self.info.fingerprint)) from None
                except ResourceNotFoundError:
                    raise source_changed(self.store.describe(self.path), "it was deleted") from None
                except HttpResponseError as error:
                    if error.status_code == 412:
                        raise source_changed(self.store.describe(self.path), etag_gone(self.info.fingerprint)) from None
                    raise
            self.offset += len(self.pending)
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


class AzureAtomicWriter(BackgroundPartWriter[None]):
    """Stages blocks as data arrives; commit() puts the block list once. Uncommitted blocks are never visible.

    Blocks are staged in the background (``connectors/background.py``: at most 2 on the wire, so a writer holds
    fewer than 4 blocks of ``block_size``; 1 for a writer opened with a part size, which holds fewer than 3); a
    staging error surfaces at the next write() or at commit()."""

    def __init__(self, store: AzureBlobStore, path: str, *, overwrite: bool = True,
                 content_type: str = BINARY, block_size: int | None = None) -> None:
        """``block_size``: a writer that must stay small (blocks of that size, one on the wire at a time)."""
        super().__init__(store, path, block_size or store.block_size, "azure-block",
                         in_flight=1 if block_size else IN_FLIGHT)
        self.overwrite = overwrite
        self.settings = ContentSettings(content_type=content_type)
        self.blob = store.container.get_blob_client(store.name(path))
        self.blocks: list[BlobBlock] = []
        self.prefix = uuid.uuid4().hex[:12]

    def _upload_part(self, chunk: bytes) -> None:
        block_id = base64.b64encode(f"{self.prefix}-{len(self.blocks):08d}".encode()).decode()
        with self._uploading():
            self.uploads.submit(partial(self.blob.stage_block, block_id=block_id, data=chunk, length=len(chunk)))
        self.blocks.append(BlobBlock(block_id=block_id))

    def commit(self) -> ObjectInfo:
        rest = self.pending.rest()
        if rest or not self.blocks:
            self._upload_part(rest)
        with self._uploading():
            self.uploads.wait()
        with self._guard(f"committing {self.store.describe(self.path)}"):
            if self.overwrite:
                answer = self.blob.commit_block_list(self.blocks, content_settings=self.settings)
            else:
                answer = self._create_only()
        return ObjectInfo(path=self.path, size=self.pending.total, fingerprint=str(answer.get("etag", "")).strip('"'))

    def _create_only(self) -> dict[str, Any]:
        """Commit with If-None-Match: * — the blob service refuses it when the blob exists."""
        from azure.core import MatchConditions

        try:
            return self.blob.commit_block_list(self.blocks, content_settings=self.settings,
                                               match_condition=MatchConditions.IfMissing)
        except (ResourceExistsError, ResourceModifiedError):
            raise DestinationExistsError(self.store.describe(self.path)) from None

    def abort(self) -> None:
        """Staged but uncommitted blocks are invisible and expire on their own: stop staging, drop our references."""
        self.pending.rest()
        self.uploads.cancel()
        self.blocks.clear()
