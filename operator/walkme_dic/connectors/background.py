"""Part uploads in the background, for the multipart writers (S3 parts, Azure blocks), and what those writers share.

An export is produced by one Python thread (read the source, map, encode CSV). If that thread also waited
for every part upload, the source and the encoder would stand still while a part travels. ``BackgroundUploads``
runs each part's upload on a small thread pool instead, so ``write()`` returns as soon as the part is handed
over, and the caller goes on encoding the next one.

What it guarantees:
* **Bounded memory**: at most ``in_flight`` parts (default ``IN_FLIGHT`` = 2) are held by the uploader at any
  time; handing over one more blocks the caller until one of them is done. With the part waiting for a slot and
  the partial next part in the writer's buffer, a writer holds fewer than ``in_flight + 2`` parts: under 4 parts
  of 16 MiB for S3, of 8 MiB for Azure (uploading inline it held under 2).
* **Order**: the caller numbers parts before handing them over (S3 part numbers, Azure block ids in the block
  list), so a part that finishes early changes nothing; ``wait()`` returns the results in hand-over order.
* **Errors**: the first failed part's exception (the SDK's own, untranslated) is raised by the next
  ``write()``, ``submit()`` or ``wait()``, in the caller's thread, where the writer translates it and aborts
  exactly as when the upload ran inline (same error types and messages).
* **Abort**: ``cancel()`` drops parts not started and waits for the ones on the wire, so that an abort issued
  afterwards (S3 AbortMultipartUpload) cannot be overtaken by a part still uploading: S3 documents that a part
  upload in progress during an abort may still succeed and leave storage behind.

What it does not do: retry (the SDKs retry each request), or share threads between writers.

Thread safety of the clients used from these threads: boto3 documents low-level clients as thread-safe once
created (boto3 guide "Multithreading or multiprocessing with clients"; we create the client in the caller's
thread and never mutate its metadata or event hooks). azure-storage-blob does not say so in its reference, but
its own ``upload_blob(max_concurrency=N)`` calls ``stage_block`` on one shared client from N pool threads
(``azure/storage/blob/_shared/uploads.py``, ``upload_data_chunks``, 12.31), which is exactly what we do here;
Microsoft's article "Thread safety and client lifetime management for Azure SDK objects" (written for .NET) says
all Azure SDK client objects are thread-safe. The caller's thread does not use the client while parts upload.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import Generic, Protocol, TypeVar

from walkme_dic.connectors.common import AbortOnError, ErrorTranslator, PartBuffer

IN_FLIGHT = 2

Result = TypeVar("Result")


class BackgroundUploads(Generic[Result]):
    """``submit(upload)`` for each part in order, then ``wait()`` for the results, or ``cancel()``."""

    def __init__(self, name: str, in_flight: int = IN_FLIGHT) -> None:
        self._pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(in_flight)
        self._parts: list[Future[Result]] = []
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    def submit(self, upload: Callable[[], Result]) -> None:
        """Start ``upload`` on a free thread (blocking while ``in_flight`` parts are uploading); raise the
        failure of an earlier part instead, if one failed."""
        self.raise_failure()
        self._slots.acquire()
        try:
            self.raise_failure()
            part = self._pool.submit(upload)
        except BaseException:
            self._slots.release()
            raise
        part.add_done_callback(self._done)
        self._parts.append(part)

    def _done(self, part: Future[Result]) -> None:
        error = None if part.cancelled() else part.exception()
        with self._lock:
            if error is not None and self._failure is None:
                self._failure = error
        self._slots.release()

    def raise_failure(self) -> None:
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure

    def wait(self) -> list[Result]:
        """Wait for every part; raise the first failure, else return the results in submission order."""
        wait_all(self._parts)
        self._pool.shutdown()
        self.raise_failure()
        return [part.result() for part in self._parts]

    def cancel(self) -> None:
        """Drop the parts not started, wait for those being uploaded; their outcome no longer matters."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class PartStore(Protocol):
    def describe(self, path: str) -> str: ...

    def _errors(self, doing: str) -> ErrorTranslator: ...


class BackgroundPartWriter(Generic[Result]):
    """What the S3 and Azure AtomicWriters share: written bytes are cut into parts of ``part_size``, each handed
    by ``_upload_part`` to ``uploads``; an SDK error is translated by the store's mapper and aborts the write."""

    def __init__(self, store: PartStore, path: str, part_size: int, name: str, in_flight: int = IN_FLIGHT) -> None:
        self.store, self.path = store, path
        self.pending = PartBuffer(part_size)
        self.uploads: BackgroundUploads[Result] = BackgroundUploads(name, in_flight)

    def write(self, data: bytes) -> int:
        with self._uploading():
            self.uploads.raise_failure()
        for part in self.pending.feed(data):
            self._upload_part(part)
        return len(data)

    def _upload_part(self, chunk: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def _uploading(self) -> AbortOnError:
        return self._guard(f"uploading {self.store.describe(self.path)}")

    def _guard(self, doing: str) -> AbortOnError:
        return AbortOnError(self.abort, self.store._errors(doing))
