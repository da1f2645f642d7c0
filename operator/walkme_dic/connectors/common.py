"""Pieces the file-store connectors share: SDK error translation and fixed-size part buffering."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import urllib3
from requests.utils import get_environ_proxies

from walkme_dic import reasons
from walkme_dic.errors import DicError, PermanentError

Store = TypeVar("Store")


class ErrorTranslator(Generic[Store]):
    """``with translator:`` turns an SDK error into a DicError via ``translate``; DicErrors pass through.
    ``store`` is the connector the error came from (its spec names the bucket, container or server)."""

    def __init__(self, store: Store, doing: str) -> None:
        self.store, self.doing = store, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> bool:
        if error is not None and not isinstance(error, DicError):
            self.translate(error)
        return False

    def translate(self, error: BaseException) -> None:
        """Raise the DicError for ``error``, or return to let it propagate unchanged."""
        raise NotImplementedError


class AbortOnError:
    """``with AbortOnError(writer.abort, translator):`` a failure aborts the write, then the translated error
    propagates (an error of the abort itself is dropped: the first one is what the user must see)."""

    def __init__(self, abort: Callable[[], None], translator: ErrorTranslator) -> None:
        self.abort, self.translator = abort, translator

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> bool:
        if error is None:
            return False
        try:
            self.translator.__exit__(kind, error, tb)
        finally:
            with contextlib.suppress(DicError):
                self.abort()
        return False


class PartBuffer:
    """Collects written bytes and hands them out in parts of exactly ``size`` bytes (the rest at the end)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.total += len(data)
        if not self.buffer and len(data) == self.size:  # written a part at a time: handed out as it is, no copy
            yield data
            return
        self.buffer += data
        while len(self.buffer) >= self.size:
            with memoryview(self.buffer) as view:  # one copy of the part, not two (a slice, then its bytes)
                part = bytes(view[: self.size])
            del self.buffer[: self.size]
            yield part

    def rest(self) -> bytes:
        part = bytes(self.buffer)
        self.buffer.clear()
        return part


def retry_delay(attempt: int, base: float, retry_after: str | None, *, cap: float = 60) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential from ``base``, at least the server's
    Retry-After (seconds or an HTTP date), never more than ``cap``."""
    delay = base * 2 ** (attempt - 1)
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                when = parsedate_to_datetime(retry_after)
                delay = max(delay, (when - datetime.now(UTC)).total_seconds())
    return max(0.0, min(delay, cap))


def etag_gone(etag: str) -> str:
    """How a file pinned to ``etag`` changed, when the store says only that the ETag no longer matches."""
    return f"replaced or deleted: its ETag is no longer {etag}"


def source_changed(where: str, how: str) -> PermanentError:
    """The error for a file replaced or removed while a run read it (every store: an ETag or generation that no
    longer matches, a size or mtime that moved, the object gone): the run stops before anything is sent rather than
    mix two versions' rows, and the next run reads the new version."""
    return PermanentError(f"{where} changed while it was being read ({how}); the next run reads the new version",
                          reason=reasons.SOURCE_CHANGED)


def redirect_refusal(url: str, status: int, location: str | None) -> PermanentError:
    """No client follows a redirect: a followed 307 resends the request, a token request's secret or a batch
    of users, to wherever its Location says (plain http, or a host the cluster admin did not allow)."""
    return PermanentError(f"{url.split('?', 1)[0]} answered HTTP {status}, a redirect to "
                          f"{(location or 'nowhere').split('?', 1)[0]!r}: redirects are not followed (they could "
                          "carry the request and its credentials elsewhere); set the URL to where the service "
                          "answers", reason=reasons.REDIRECTED)


def refuse_redirects(response: Any, *_: Any, **__: Any) -> Any:
    """A ``requests`` response hook: a redirect answer raises instead of being followed."""
    if response.is_redirect:
        raise redirect_refusal(response.url, response.status_code, response.headers.get("Location"))
    return response


def http_pool(base: str, size: int, **options: Any) -> urllib3.PoolManager:
    """urllib3 directly (requests spends ~1.7 times the CPU per call on the WalkMe upsert path), with the
    proxy the environment sets for this URL (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, resolved once, as requests
    does). ``options`` go to the pool (e.g. ``ssl_context``)."""
    proxy = environment_proxy(base)
    if proxy:
        return urllib3.ProxyManager(proxy, maxsize=size, **options)
    return urllib3.PoolManager(maxsize=size, **options)


def environment_proxy(base: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for ``base``, unless NO_PROXY exempts it."""
    proxies = get_environ_proxies(base)
    return proxies.get(base.split(":", 1)[0].lower()) or proxies.get("all")
