"""WalkMe API client: OAuth client-credentials tokens, user-attribute upserts, the activity log, Insights export.

The contract is docs/walkme-api.md: the token endpoint, `POST /public/v1/user/data` and
`GET /public/v1/activitylog` are WalkMe's documented API; the Insights export is ours, kept in
this one class so it can follow a real API when one is published. No secret ever goes into a
URL: the integration token travels in the upsert's JSON body, the API key in the token call's
Authorization header, the bearer token in every other call's (access and proxy logs record URLs).

For the engine (connectors/records.py) an export is a record source and ``UserAttributes`` the destination.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson

from walkme_dic import reasons
from walkme_dic.api.connection import INSIGHTS_EXPORT_NEEDED, WalkMeProvider
from walkme_dic.connectors.base import ProbeResult
from walkme_dic.connectors.common import redirect_refusal, retry_delay
from walkme_dic.connectors.records import EncodedBatch, PagedRecords, WriteReport
from walkme_dic.connectors.transport import Response, Unreachable, transport_for
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError
from walkme_dic.redaction import redact

RETRIABLE = {429, 500, 502, 503, 504}
# 4xx answers that refuse the objects sent (not the caller's credentials or the URL): narrowed down.
REFUSED = {400, 409, 413, 422}
OBJECT = re.compile(r"^data\[(\d{1,3})\]:\s*")  # the fake's (and our assumed) per-object prefix, see docs
TOKEN_MARGIN = 300
UPSERT_SCOPE = "endUserUpdate:write"  # the API key's scope the End User Update API needs (WalkMe's developer docs)
DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))  # bytes.translate: a digit to 0, else space
LONG_DIGITS = b"0" * 19  # digits of a number that may lie beyond 64 bits (2**63 has 19); a regex took 4x the parse
SNIPPET = 80  # characters of an answer that is not JSON shown in the error
ACTIVITY_LOG = "/public/v1/activitylog"
ACTIVITY_PAGE = 1000  # WalkMe's default limit for the activity log
ACTIVITY_SETTLE = 60  # seconds: a run reads the activity log up to this long before it began (assumption A12)
LOOKBACK = 300  # seconds: an incremental Insights export reads records at least this old (assumption A15)


class WalkMeClient:
    def __init__(self, spec: WalkMeProvider, credentials: Mapping[str, str], *, max_concurrency: int | None = None,
                 max_attempts: int = 6, retry_base_delay: float = 0.5, timeout: float = 60) -> None:
        """``max_concurrency``: requests in flight at once; the Connection's ``maxInFlight`` unless given."""
        self.base = spec.api_url.rstrip("/")
        self.insights_base = spec.insights_export_url.rstrip("/") if spec.insights_export_url else None
        self.client_id = credentials.get("clientId", "")
        self._client_secret = credentials.get("clientSecret", "")
        self.max_concurrency = max_concurrency or spec.max_in_flight
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.timeout = timeout
        self.transport = transport_for(self.base, self.max_concurrency * 2)
        self.insights_transport = transport_for(self.insights_base, self.max_concurrency * 2) \
            if self.insights_base and self.insights_base != self.base else self.transport
        self._token: str | None = None
        self._token_expires = 0.0
        self._scopes: list[str] | None = None  # the scopes the token answer listed, if it listed any
        self._token_lock = threading.Lock()
        self.api_calls = 0

    # ---- auth --------------------------------------------------------------------------------

    def _access_token(self, *, renew: bool = False) -> str:
        with self._token_lock:
            if renew or self._token is None or time.monotonic() > self._token_expires:
                basic = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode()
                response = self._send("POST", "/accounts/connect/token", authorization=f"Basic {basic}",
                                      form={"grant_type": "client_credentials"})
                if response.status in (400, 401, 403):
                    raise AuthenticationError(
                        f"WalkMe rejected the API key (clientId {self.client_id!r}) at {self.base}; "
                        "check the Secret's clientId and clientSecret")
                if response.status >= 300:
                    raise PermanentError(f"POST {self.base}/accounts/connect/token answered HTTP {response.status}: "
                                         f"{self._message(response)}", reason=reasons.UNEXPECTED_ANSWER)
                body = self._json(response, "POST", "/accounts/connect/token")
                if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
                    raise PermanentError(f"POST {self.base}/accounts/connect/token answered JSON without an "
                                         f"access_token: {self._snippet(response.data)}; {self._check_url()}",
                                         reason=reasons.UNEXPECTED_ANSWER)
                self._token = body["access_token"]
                self._token_expires = time.monotonic() + max(int(body.get("expires_in", 3600)) - TOKEN_MARGIN, 30)
                scope = body.get("scope")
                self._scopes = scope.split() if isinstance(scope, str) else None
            return self._token

    def probe(self) -> ProbeResult:
        """A token for the API key, and its scope when the token answer lists one (WalkMe documents none)."""
        self._access_token(renew=True)
        issued = f"WalkMe API at {self.base} issued a token for clientId {self.client_id!r}"
        if self._scopes is None:
            return ProbeResult(f"{issued}; its answer lists no scopes, so whether the key has {UPSERT_SCOPE} (which "
                               "inbound Integrations need) shows at the first run")
        if UPSERT_SCOPE not in self._scopes:
            raise PermanentError(
                f"{issued}, but with the scopes {' '.join(self._scopes) or '(none)'}: the End User Update API needs "
                f"{UPSERT_SCOPE}. Ask the WalkMe account manager to enable the End User Update API for the account "
                "and give the key that scope (Admin Center > API Keys)", reason=reasons.MISSING_SCOPE)
        return ProbeResult(f"{issued} with the scope {UPSERT_SCOPE}")

    # ---- HTTP with retries -------------------------------------------------------------------

    @staticmethod
    def _insights(path: str) -> bool:
        """Whether ``path`` is an Insights export URL, which export() makes whole, rather than a path at apiUrl."""
        return "://" in path

    def _url(self, path: str) -> str:
        return path if self._insights(path) else self.base + path

    def _send(self, method: str, path: str, *, authorization: str | None = None, json_body: Any = None,
              form: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Response:
        """One logical call: retries 429/5xx/connection errors with backoff; renews the token once on 401.

        ``authorization`` defaults to the bearer token of the API key; ``json_body`` may come encoded.
        """
        renewed = False
        bearer = authorization is None
        url = self._url(path) + (f"?{urlencode(params)}" if params else "")
        insights = self._insights(path)
        transport = self.insights_transport if insights else self.transport
        where = f"the Insights export endpoint at {self.insights_base}" if insights else f"WalkMe at {self.base}"
        headers: dict[str, str] = {}
        body = None
        if json_body is not None:
            body = json_body if isinstance(json_body, bytes) else json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json"}
        elif form is not None:
            headers, body = {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(form).encode()
        for attempt in range(1, self.max_attempts + 1):
            headers["Authorization"] = f"Bearer {self._access_token()}" if bearer else authorization or ""
            try:
                self.api_calls += 1
                response = transport.request(method, url, body=body, headers=headers, timeout=self.timeout)
            except Unreachable as error:
                if attempt == self.max_attempts:
                    raise TransientError(f"cannot reach {where}: {error}") from None
                self._pause(attempt, None)
                continue
            if 300 <= response.status < 400:
                raise redirect_refusal(url, response.status, response.headers.get("Location"))
            if response.status == 401 and bearer and not renewed:
                renewed = True
                self._access_token(renew=True)
                continue
            if response.status in RETRIABLE and attempt < self.max_attempts:
                self._pause(attempt, response.headers.get("Retry-After"))
                continue
            if response.status in RETRIABLE:
                raise TransientError(f"WalkMe kept answering {response.status} for {method} {path} "
                                     f"after {attempt} attempts")
            return response
        raise TransientError(f"WalkMe did not answer {method} {path}")

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        time.sleep(retry_delay(attempt, self.retry_base_delay, retry_after))

    def _message(self, response: Response) -> str:
        """WalkMe's reason in an error answer: its JSON ``message`` (or ``error``), else what came back."""
        try:
            body = json.loads(response.data)
            return str(body.get("message") or body.get("error") or body)
        except (ValueError, AttributeError):
            return f"not JSON ({self._kind(response)}): {self._snippet(response.data)}"

    def _json(self, response: Response, method: str, path: str) -> Any:
        """The JSON of a 2xx answer; an answer that is not JSON (a login page, a proxy's, a wrong apiUrl's HTML)
        fails naming the URL, its Content-Type and its first characters, never as a decoder's exception."""
        try:
            if LONG_DIGITS in response.data.translate(DIGITS):  # orjson reads an integer beyond 64 bits as a float
                return json.loads(response.data)
            return orjson.loads(response.data)  # pages of 10,000 records: orjson decodes them about a third faster
        except ValueError:  # orjson.JSONDecodeError and json.JSONDecodeError are ValueErrors
            raise PermanentError(
                f"{method} {self._url(path)} answered HTTP {response.status} with {self._kind(response)}, not the "
                f"JSON the WalkMe API answers: {self._snippet(response.data)}; {self._check_url()}",
                reason=reasons.UNEXPECTED_ANSWER) from None

    @staticmethod
    def _kind(response: Response) -> str:
        kind = response.headers.get("Content-Type")
        return f"Content-Type {kind}" if kind else "no Content-Type"

    def _snippet(self, data: bytes) -> str:
        """The first SNIPPET characters of an answer, whitespace collapsed, secrets masked, quoted."""
        text = " ".join(data[:SNIPPET * 4].decode(errors="replace").split())
        shown = redact(text[:SNIPPET], [self._client_secret, self._token or ""])
        return repr(shown) + (" …" if len(text) > SNIPPET else "") if text else "an empty body"

    def _check_url(self) -> str:
        return ("check spec.walkme.apiUrl: the WalkMe API host of the account's region (e.g. https://api.walkme.com), "
                "not the console's or a proxy's address")

    # ---- user attributes ---------------------------------------------------------------------

    def upsert_batches(self, integration_token: str, batches: Iterable[EncodedBatch],
                       report: WriteReport | None = None) -> WriteReport:
        """Send batches of (id, encoded user object) pairs, at most 100 each, up to max_concurrency at once;
        never deletes anything. A refused batch is split and resent until only the refused objects remain:
        ``report.failed`` holds (id, WalkMe's reason) for each of them, ``report.written`` the others.
        ``report`` (filled as batches are answered) says how far a send that raised had come."""
        report = report if report is not None else WriteReport()
        prefix = b'{"token":' + json.dumps(integration_token).encode() + b',"data":['
        pending: set[Future[WriteReport]] = set()
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="walkme-upsert") as pool:
            for batch in batches:
                pending.add(pool.submit(self._post_batch, prefix, batch))
                if len(pending) >= self.max_concurrency * 2:
                    pending = self._answered(pending, report, FIRST_COMPLETED)
            self._answered(pending, report, ALL_COMPLETED)
        report.failed.sort()
        report.api_calls = self.api_calls
        return report

    @staticmethod
    def _answered(pending: set[Future[WriteReport]], report: WriteReport, until: str) -> set[Future[WriteReport]]:
        """Wait for some (``FIRST_COMPLETED``) or all pending batches; add their outcome to ``report``."""
        done, pending = wait(pending, return_when=until)
        for future in done:
            report.add(future.result())
        return pending

    def _post_batch(self, prefix: bytes, batch: list[tuple[int, bytes]]) -> WriteReport:
        body = prefix + b",".join(record for _, record in batch) + b"]}"
        response = self._send("POST", "/public/v1/user/data", json_body=body)
        if response.status in (401, 403):
            raise AuthenticationError(
                f"WalkMe refused the integration token or the API key (HTTP {response.status}: "
                f"{self._message(response)}); check the integration token Secret, and that the End User Update API "
                f"is enabled for the account and the key has the scope {UPSERT_SCOPE} (the WalkMe account manager "
                "enables both)")
        if response.status in REFUSED:
            return self._narrowed(prefix, batch, self._message(response))
        if response.status >= 300:
            raise PermanentError(f"WalkMe answered {response.status}: {self._message(response)}")
        if response.data.strip():  # an acknowledgement (JSON); a 2xx page of HTML is not WalkMe's (A2)
            self._json(response, "POST", "/public/v1/user/data")
        return WriteReport(written=len(batch))

    def _narrowed(self, prefix: bytes, batch: list[tuple[int, bytes]], message: str) -> WriteReport:
        """A refused batch down to its refused objects. When WalkMe's answer names the object (``data[i]: …``,
        see docs/walkme-api.md) that one is refused with the answer's reason and the objects around it are
        sent again (those before it passed WalkMe's checks): one request per refused object. Otherwise the
        batch is halved until single objects remain."""
        named = OBJECT.match(message)
        outcome = WriteReport()
        if named and int(named.group(1)) < len(batch):
            position = int(named.group(1))
            outcome.failed.append((batch[position][0], f"WalkMe refused it: {message[named.end():]}"))
            parts = [batch[:position], batch[position + 1:]]
        elif len(batch) == 1:
            outcome.failed.append((batch[0][0], f"WalkMe refused it: {message}"))
            parts = []
        else:
            parts = [batch[:len(batch) // 2], batch[len(batch) // 2:]]
        for part in filter(None, parts):
            outcome.add(self._post_batch(prefix, part))
        return outcome

    # ---- Insights export (ours) --------------------------------------------------------------

    def export(self, dataset: str, *, since: str | None, report_id: str | None = None, page_size: int = 10_000,
               incremental: bool = False, lookback: int | None = None, now: datetime | None = None) -> PagedRecords:
        """The records of ``dataset`` stamped at or after ``since``. ``incremental`` (since: lastRun): only those
        stamped more than ``lookback`` seconds (unset: LOOKBACK) before ``now``, never before ``since``, and that
        time is the watermark: consecutive windows [since, until) meet without a gap or an overlap, and a record
        that reaches the export up to ``lookback`` seconds after its timestamp is still in its window when that is
        read (A15). The activity log reads up to ``lookback`` (unset: its minute, A12) before ``now``; a report
        is a snapshot."""
        if dataset == "activityLog":
            return self.activity_log(since=since, settle=ACTIVITY_SETTLE if lookback is None else lookback, now=now)
        if self.insights_base is None:
            raise PermanentError(INSIGHTS_EXPORT_NEEDED.format(dataset=dataset),
                                 reason=reasons.INSIGHTS_EXPORT_NOT_CONFIGURED)
        path = self.insights_base + (f"/public/v1/insights/reports/{report_id}/rows" if dataset == "report" else
                                     f"/public/v1/insights/export/{dataset}")
        params = {"limit": str(page_size), **({"since": since} if since else {})}
        if not incremental or dataset == "report":
            return PagedRecords(lambda: self._pages(path, params))
        until = _until(since, LOOKBACK if lookback is None else lookback, now)
        query = {**params, "until": until}
        return PagedRecords(lambda: ({**page, "watermark": until} for page in self._pages(path, query)))

    def activity_log(self, *, since: str | None, page_size: int = ACTIVITY_PAGE, settle: int = ACTIVITY_SETTLE,
                     now: datetime | None = None) -> PagedRecords:
        """The account's activity log (WalkMe's documented ``GET /public/v1/activitylog``) from ``since`` (an RFC
        3339 time; None: WalkMe's default, the last hour) to ``settle`` seconds before ``now``, which becomes the
        watermark: the next run reads from there, so each event is read by one run (A12)."""
        until = (now or datetime.now(UTC)) - timedelta(seconds=settle)
        params = {"to": str(_milliseconds(until)), "limit": str(page_size)}
        if since:
            params["from"] = str(_milliseconds(datetime.fromisoformat(since.replace("Z", "+00:00"))))
        watermark = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return PagedRecords(lambda: self._offset_pages(ACTIVITY_LOG, params, watermark))

    def _offset_pages(self, path: str, params: dict[str, str], watermark: str) -> Iterator[dict[str, Any]]:
        """Pages of ``{"events": [...]}`` by limit and offset, as ``{"data": events, "watermark": ...}``; the
        last page is the first one shorter than the limit."""
        limit, offset = int(params["limit"]), 0
        while True:
            page = self._get_page(path, {**params, "offset": str(offset)})
            events = page.get("events")
            if not isinstance(events, list):
                raise PermanentError(f"GET {self._url(path)} answered JSON without an events list: "
                                     f"{self._snippet(orjson.dumps(page))}", reason=reasons.UNEXPECTED_ANSWER)
            yield {"data": events, "watermark": watermark}
            if len(events) < limit:
                return
            offset += len(events)

    def _pages(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self._get_page(path, query)
            yield page
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def _get_page(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        """One page (a JSON object) of a GET, or the error that says why not."""
        response = self._send("GET", path, params=query)
        who = "The Insights export endpoint" if self._insights(path) else "WalkMe"
        if response.status in (401, 403):
            raise AuthenticationError(f"{who} refused access to {path} (HTTP {response.status})")
        if response.status == 404:
            raise PermanentError(f"{who} has no {path}: {self._message(response)}")
        if response.status >= 300:
            raise PermanentError(f"{who} answered {response.status} for {path}: {self._message(response)}")
        page = self._json(response, "GET", path)
        if not isinstance(page, dict):
            raise PermanentError(f"GET {self._url(path)} answered JSON that is not a page of records: "
                                 f"{self._snippet(response.data)}", reason=reasons.UNEXPECTED_ANSWER)
        return page


def _until(since: str | None, lookback: int, now: datetime | None) -> str:
    """``lookback`` seconds before ``now`` as an RFC 3339 time with milliseconds; never before ``since`` (a clock
    that went back, a longer lookback: the window is then empty and the watermark stays)."""
    until = (now or datetime.now(UTC)) - timedelta(seconds=lookback)
    if since is not None:
        until = max(until, datetime.fromisoformat(since.replace("Z", "+00:00")))
    return until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _milliseconds(moment: datetime) -> int:
    """A time as the activity log's parameters take it: Unix milliseconds."""
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class UserAttributes:
    """WalkMe user attributes as a record destination: batches of (id, encoded user object), upserted with the
    integration token (:meth:`WalkMeClient.upsert_batches`)."""

    client: WalkMeClient
    integration_token: str

    def write(self, records: Iterable[EncodedBatch], report: WriteReport) -> WriteReport:
        return self.client.upsert_batches(self.integration_token, records, report)
