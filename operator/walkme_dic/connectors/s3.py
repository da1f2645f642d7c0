"""S3 (and S3-compatible stores) with boto3: probe, stat, streaming reads, atomic multipart writes.

Parts upload on background threads while the sync encodes the next one (``background.py`` says how many, what
that costs in memory and why an abort first waits for the parts on the wire)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from walkme_dic.api.connection import S3Provider
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

PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
READ_CHUNK = 1024 * 1024
RESUME_ATTEMPTS = 5
AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"}
MISSING_BUCKET = {"NoSuchBucket"}
MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "503",
                   "ThrottlingException"}


class S3Store:
    """One bucket; every path is relative to the Connection's prefix."""

    def __init__(self, spec: S3Provider, credentials: Mapping[str, str], *, part_size: int = PART_SIZE,
                 max_attempts: int = 8, limits: Limits | None = None) -> None:
        self.spec = spec
        self.part_size = max(part_size, MIN_PART_SIZE)
        keys = {}
        if credentials.get("AWS_ACCESS_KEY_ID"):
            keys = {"aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
                    "aws_secret_access_key": credentials.get("AWS_SECRET_ACCESS_KEY"),
                    "aws_session_token": credentials.get("AWS_SESSION_TOKEN") or None}
        limits = limits or Limits(timeout=60, attempts=max_attempts)
        config = Config(retries={"mode": "standard", "max_attempts": limits.attempts},
                        connect_timeout=limits.connect_timeout, read_timeout=limits.timeout,
                        s3={"addressing_style": "path" if spec.endpoint_url else "auto"})
        self.client = boto3.session.Session().client("s3", region_name=spec.region, endpoint_url=spec.endpoint_url,
                                                     config=config, **keys)
        self.client.meta.events.register_first("needs-retry.s3", _refuse_redirect)

    def key(self, path: str) -> str:
        return f"{self.spec.prefix}{path.lstrip('/')}"

    def describe(self, path: str) -> str:
        return f"s3://{self.spec.bucket}/{self.key(path)}"

    def probe(self) -> ProbeResult:
        with self._errors("reaching bucket"):
            self.client.head_bucket(Bucket=self.spec.bucket)
        return ProbeResult(f"bucket {self.spec.bucket!r} in {self.spec.region} is reachable")

    def stat(self, path: str) -> ObjectInfo:
        with self._errors(f"reading {self.describe(path)}"):
            head = self.client.head_object(Bucket=self.spec.bucket, Key=self.key(path))
        return ObjectInfo(path=path, size=int(head["ContentLength"]), fingerprint=head["ETag"].strip('"'))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        cut = len(self.spec.prefix)
        with self._errors(f"listing {self.describe(prefix)}*"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.spec.bucket,
                                                                              Prefix=self.key(prefix)):
                for item in page.get("Contents", []):
                    yield ObjectInfo(path=item["Key"][cut:], size=int(item["Size"]),
                                     fingerprint=item["ETag"].strip('"'), modified=item["LastModified"])

    def open_read(self, path: str) -> io.BufferedReader:
        info = self.stat(path)
        return io.BufferedReader(_S3Reader(self, path, info), buffer_size=READ_CHUNK)

    def open_write(self, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                   part_size: int | None = None) -> S3AtomicWriter:
        self.abort_leftover_uploads(path)
        return S3AtomicWriter(self, path, overwrite=overwrite, content_type=content_type,
                              part_size=max(part_size, MIN_PART_SIZE) if part_size else None)

    def abort_leftover_uploads(self, path: str) -> int:
        """Abort unfinished multipart uploads of this key: an earlier attempt that was killed could not.

        Needs s3:ListBucketMultipartUploads; without it the leftovers stay (invisible, but billed) until
        the bucket's AbortIncompleteMultipartUpload lifecycle rule removes them.
        """
        key = self.key(path)
        try:
            with self._errors(f"listing unfinished uploads of {self.describe(path)}"):
                listing = self.client.list_multipart_uploads(Bucket=self.spec.bucket, Prefix=key)
        except AuthenticationError:
            return 0
        leftovers = [u["UploadId"] for u in listing.get("Uploads", []) if u["Key"] == key]
        for upload_id in leftovers:
            with self._errors(f"aborting an unfinished upload of {self.describe(path)}"):
                self.client.abort_multipart_upload(Bucket=self.spec.bucket, Key=key, UploadId=upload_id)
        return len(leftovers)

    def _errors(self, doing: str) -> _ErrorMapper:
        return _ErrorMapper(self, doing)


class _ErrorMapper(ErrorTranslator[S3Store]):
    """Turns botocore errors into DicErrors with a message a person can act on (no secrets)."""

    def translate(self, error: BaseException) -> None:
        bucket = self.store.spec.bucket
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in AUTH_CODES or status == "403":
                raise AuthenticationError(
                    f"S3 refused the credentials while {self.doing} (bucket {bucket!r}, {code or status}); check the "
                    "Secret's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy") from None
            if code in MISSING_BUCKET or (status == "404" and "bucket" in self.doing):
                raise NotFoundError(f"bucket {bucket!r} does not exist (while {self.doing})") from None
            if code in MISSING_KEY or status == "404":
                raise NotFoundError(f"{self.doing}: the object does not exist") from None
            if code in TRANSIENT_CODES or status.startswith("5"):
                raise TransientError(f"S3 kept failing while {self.doing}: {code or status} (retries exhausted)") \
                    from None
            raise PermanentError(f"S3 error while {self.doing}: {code or status}") from None
        if isinstance(error, BotoCoreError | ConnectionError | ReadTimeoutError | OSError):
            raise TransientError(f"cannot reach S3 while {self.doing}: {type(error).__name__}") from None


class _S3Reader(io.RawIOBase):
    """Streams an object; after a dropped connection it resumes with a Range request, same ETag only: every GET
    carries If-Match, so an object replaced (412 PreconditionFailed) or deleted (404) since the stat fails the read
    with SourceChanged."""

    def __init__(self, store: S3Store, path: str, info: ObjectInfo) -> None:
        self.store, self.path, self.info = store, path, info
        self.offset = 0
        self.body: Any = None

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        with self.store._errors(f"reading {self.store.describe(self.path)}"):
            try:
                response = self.store.client.get_object(
                    Bucket=self.store.spec.bucket, Key=self.store.key(self.path), IfMatch=f'"{self.info.fingerprint}"',
                    **({"Range": f"bytes={self.offset}-"} if self.offset else {}))
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                if code == "PreconditionFailed" or status == "412":
                    raise source_changed(self.store.describe(self.path), etag_gone(self.info.fingerprint)) from None
                if code in MISSING_KEY or status == "404":
                    raise source_changed(self.store.describe(self.path), "it was deleted") from None
                raise
        self.body = response["Body"]

    def readinto(self, buffer: Any) -> int:
        if self.offset >= self.info.size:
            return 0
        for _attempt in range(RESUME_ATTEMPTS):
            if self.body is None:
                self._open()
            try:
                data = self.body.read(len(buffer))
            except (BotoCoreError, OSError):
                self.body = None
                continue
            if not data and self.offset < self.info.size:
                self.body = None  # the stream ended early: resume from here
                continue
            buffer[: len(data)] = data
            self.offset += len(data)
            return len(data)
        raise TransientError(f"reading {self.store.describe(self.path)} kept failing at byte {self.offset}")

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
        super().close()


class S3AtomicWriter(BackgroundPartWriter[dict[str, Any]]):
    """Multipart upload that becomes visible only on commit(); abort() (or any failure) removes all parts.

    Parts upload in the background (``connectors/background.py``: at most 2 on the wire, so a writer holds
    fewer than 4 parts of ``part_size``; 1 for a writer opened with a part size, which holds fewer than 3); an
    upload error surfaces at the next write() or at commit()."""

    store: S3Store

    def __init__(self, store: S3Store, path: str, *, overwrite: bool = True, content_type: str = BINARY,
                 part_size: int | None = None) -> None:
        """``part_size``: a writer that must stay small (parts of that size, one on the wire at a time)."""
        super().__init__(store, path, part_size or store.part_size, "s3-part",
                         in_flight=1 if part_size else IN_FLIGHT)
        self.upload_id: str | None = None
        self.parts = 0
        self.condition = {} if overwrite else {"IfNoneMatch": "*"}  # S3 conditional writes: create only
        self.content_type = content_type

    def _upload_part(self, chunk: bytes) -> None:
        with self._uploading():
            if self.upload_id is None:
                self.upload_id = self.store.client.create_multipart_upload(
                    Bucket=self.store.spec.bucket, Key=self.store.key(self.path),
                    ContentType=self.content_type)["UploadId"]
            self.parts += 1
            self.uploads.submit(partial(self._send_part, self.upload_id, self.parts, chunk))

    def _send_part(self, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        """Runs on an uploader thread."""
        answer = self.store.client.upload_part(Bucket=self.store.spec.bucket, Key=self.store.key(self.path),
                                               UploadId=upload_id, PartNumber=number, Body=chunk)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def commit(self) -> ObjectInfo:
        spec, key = self.store.spec, self.store.key(self.path)
        rest = self.pending.rest()
        if self.upload_id is None:
            with self._guard(f"completing {self.store.describe(self.path)}"), self._created():
                answer = self.store.client.put_object(Bucket=spec.bucket, Key=key, Body=rest,
                                                     ContentType=self.content_type, **self.condition)
        else:
            if rest:
                self._upload_part(rest)
            with self._uploading():
                parts = self.uploads.wait()
            with self._guard(f"completing {self.store.describe(self.path)}"), self._created():
                answer = self.store.client.complete_multipart_upload(
                    Bucket=spec.bucket, Key=key, UploadId=self.upload_id, MultipartUpload={"Parts": parts},
                    **self.condition)
        return ObjectInfo(path=self.path, size=self.pending.total, fingerprint=str(answer.get("ETag", "")).strip('"'))

    @contextlib.contextmanager
    def _created(self) -> Iterator[None]:
        """A create-only write that found the object: 412 PreconditionFailed (409 when another write raced)."""
        try:
            yield
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if self.condition and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise DestinationExistsError(self.store.describe(self.path)) from None
            raise

    def abort(self) -> None:
        """Parts still uploading are waited for first: an abort they overtook could leave a part behind."""
        self.pending.rest()
        self.uploads.cancel()
        if self.upload_id is not None:
            upload_id, self.upload_id = self.upload_id, None
            with self.store._errors(f"aborting the upload of {self.store.describe(self.path)}"):
                self.store.client.abort_multipart_upload(Bucket=self.store.spec.bucket,
                                                         Key=self.store.key(self.path), UploadId=upload_id)


def _refuse_redirect(response: Any = None, **_: Any) -> None:
    """botocore resends a 3xx to its Location (a loop when the Location answers 307 again); only its own region
    correction (an answer naming ``x-amz-bucket-region``, sent on to the region's S3 endpoint, SigV4-signed)
    stays."""
    answer = response[0] if response else None
    if answer is not None and 300 <= answer.status_code < 400 and "x-amz-bucket-region" not in answer.headers:
        raise redirect_refusal(answer.url, answer.status_code, answer.headers.get("Location"))
