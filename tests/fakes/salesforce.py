"""A fake Salesforce org speaking the real REST, sObject Collections and Bulk API 2.0 HTTP protocols.

Run it with ``url = fake.start()`` (a background thread, 127.0.0.1, free port) and ``fake.stop()``.
It is its own OAuth login host and instance: ``POST /services/oauth2/token`` answers with
``instance_url`` = the fake. Shapes follow Salesforce's documentation: error bodies are
``[{"message", "errorCode"}]``, OAuth errors ``{"error", "error_description"}``, query pages carry
``totalSize``/``done``/``nextRecordsUrl`` and records with ``attributes``, collections answer one
``{id, success, errors, created}`` per record in order, Bulk 2.0 results are CSV with ``sf__`` columns.

Besides the REST query (``query``/``queryAll``, with or without the trailing slash Salesforce
documents), it serves the single-record sObject endpoints (create, get, get/upsert by external id,
update, delete, describe), Bulk 2.0 ingest (insert, update, upsert, delete, hardDelete) and query
jobs, and the OAuth grants client credentials, refresh token, password and JWT bearer (the assertion
verified with the public key a test registers). Unknown routes answer Salesforce's JSON error list.

Test hooks: ``define``/``seed``/``records`` for data, ``fail_next``/``throttle``/``unavailable`` for
faults, ``fail_next_bulk_job`` to end a job Failed, ``register_jwt_key`` for the JWT bearer flow,
``calls`` (a Counter by kind) for API budgets, ``advance`` to move the org's clock, ``begin`` for a
transaction that commits late, ``time_out_after_applying`` for a gateway's 502/504 after a call ran (or before
it reached the org, ``applied=False``; ``meanwhile`` for what another client does in that moment, such as
``open_job``, an Open ingest job another process of the same user creates),
``bulk_batch_size`` for the rows of a Bulk job's internal batch, ``fail_next_bulk_job(after_batches=)``
for a job that fails part way, ``lock`` for records another transaction holds (UNABLE_TO_LOCK_ROW),
``daily_limit`` for the org's 24-hour API allocation (enforced: past it every call is refused) and ``host`` for
the login host the fake plays (``login.salesforce.com``: no My Domain, so no client credentials flow);
an SObject's ``case_sensitive`` makes its external id field Unique and case sensitive (describe says so),
otherwise external ids compare case-insensitively, as Salesforce's do by default.

What it refuses as an org does (each with its documentation page where it is enforced): calls past
the daily allocation (403 REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded."); a JWT assertion whose
``exp`` is more than 3 minutes ahead; the client credentials flow at login/test.salesforce.com; API
versions before 31.0 (410 Gone), after the org's release (404) and Bulk API 2.0 before 41.0 (404); a
Bulk job's data whose record line ends differ from its ``lineEnding`` (the job Failed); it reads the
data with the job's ``columnDelimiter``.

Every answer carries the org's time in ``Date`` (RFC 9110; Salesforce's servers send it on every REST
and OAuth answer), the clock ``advance`` moves. Where Salesforce's documentation is silent the fake
assumes:
- SystemModstamp is the time of the DML statement, in whole seconds, and a transaction's changes
  become visible to queries all at once when it commits (``begin``/``Transaction.commit``); the
  documentation says only that a long-running transaction holds getUpdated's latestDateCovered at
  its start until it completes.
- A 502/504 may come after the call ran (``time_out_after_applying``): a gateway in front of the org
  timed out while the org finished it. Salesforce documents 503 (unavailable) but not its gateways.
- Get All Jobs answers every ingest job in one page, newest last; Salesforce pages by 1000 and does not
  document an order.
- A Bulk job's internal batches are consecutive runs of ``bulk_batch_size`` rows processed last batch
  first: Salesforce promises no order across batches, and this order lets a stale copy of a key win
  when copies sit in different batches. A repeated key fails every copy within one batch or one
  sObject Collections call (the documented error names no scope smaller than the batch; Apex sees it
  per 200-record DML chunk).
- A job failed part way (``fail_next_bulk_job``) keeps its processed batches applied, counts them in
  numberRecordsProcessed/Failed, and lists the rest under unprocessedrecords.
- The daily allocation is refused exactly at ``daily_limit`` (Salesforce may allow some overage and counts
  over a rolling 24 hours); the concurrency limit is not counted, only answered on demand (``throttle``,
  "ConcurrentRequests (Concurrent API Requests) Limit exceeded.").
- The wording of refusals the documentation does not spell out: an over-long JWT ``invalid_grant``
  "invalid assertion"; client credentials at a generic login host ``invalid_grant`` "request not
  supported on this domain"; a retired version's 410 body ``[{"errorCode": "GONE", …}]``; a wrong line
  ending "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF"; an
  external id several records share: per record (Collections, Bulk) DUPLICATE_EXTERNAL_ID "… more than
  one record found for external id field: [ids]", the single-record upsert 300 with the records' URLs.
- The org runs release Winter '27 (API 68.0, ``LATEST_VERSION``); the JWT ``exp`` is checked against the
  org's clock (``advance`` moves it), with one second for rounding.
- A job's header matches fields case-insensitively (``lastname`` is applied to LastName), but
  successfulResults and failedResults echo only the columns whose header is the field's API name
  exactly: "Results only include columns that are a match"
  (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm;
  that a header of another case is still applied is the assumption). unprocessedrecords gives the rows
  as uploaded, header and all.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import jwt
from aiohttp import web

from tests.fakes.salesforce_soql import Query, SoqlError, parse
from tests.fakes.salesforce_store import CSV_NULL, FieldDef, FieldType, RecordError, SObject, Store
from walkme_dic_dev.httpserver import BackgroundServer

COLLECTION_LIMIT = 200
# "Salesforce creates a separate batch for every 10,000 records in your job data"
# (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/how_requests_are_processed.htm)
BULK_BATCH = 10_000
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# "exp: The expiration time of the assertion within 3 minutes" (OAuth 2.0 JWT Bearer Flow,
# https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm); a second more for rounding
JWT_MAX_LIFETIME = 181
# "REST API returns 410: GONE" for the retired versions 7.0 to 30.0 (Salesforce Help 000354473)
RETIRED_BEFORE = 31.0
BULK_V2_SINCE = 41.0  # Bulk API 2.0 ingest came with API version 41.0 (Winter '18)
LATEST_VERSION = 68.0  # an org answers versions up to its release's (Winter '27: 68.0)
DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^", "BACKQUOTE": "`"}
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
DATA = r"/services/data/{version:v\d+\.\d}"


@dataclass
class Fault:
    kind: re.Pattern[str]
    remaining: int
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # the call runs, then the fault is answered (a gateway timing out behind it)
    meanwhile: Callable[[], None] | None = None  # what else happens in the org before the fault is answered


@dataclass
class IngestJob:
    id: str
    object: str
    operation: str
    external_id: str | None
    line_ending: str
    version: str
    created: str = ""  # createdDate, by the org's clock
    delimiter: str = "COMMA"
    state: str = "Open"
    data: bytes | None = None
    polls: int = 0
    fail_with: str | None = None
    fail_after: int = 0  # batches processed before the job fails (with fail_with)
    error_message: str | None = None
    columns: list[str] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)  # (id, created, row)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (id, sf__Error, row)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.object, "createdById": USER_ID,
            "createdDate": self.created, "systemModstamp": self.created,
            "state": self.state, "concurrencyMode": "Parallel", "contentType": "CSV", "jobType": "V2Ingest",
            "apiVersion": float(self.version[1:]), "lineEnding": self.line_ending, "columnDelimiter": self.delimiter,
            "contentUrl": f"services/data/{self.version}/jobs/ingest/{self.id}/batches",
            "numberRecordsProcessed": len(self.successes) + len(self.failures),
            "numberRecordsFailed": len(self.failures), "retries": 0,
        }
        if self.external_id:
            body["externalIdFieldName"] = self.external_id
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class QueryJob:
    id: str
    rows: list[dict[str, Any]]
    columns: list[str]
    polls: int = 0
    state: str = "UploadComplete"


class FakeSalesforce(BackgroundServer):
    """One org: OAuth clients, users, refresh tokens, sObjects, and the API limits of a day."""

    thread_name = "fake-salesforce"

    def __init__(self, clients: Mapping[str, str], *, users: Mapping[str, tuple[str, str]] | None = None,
                 refresh_tokens: Iterable[str] = (), page_size: int = 2000, daily_limit: int = 15000) -> None:
        super().__init__()
        self.clients = dict(clients)
        self.users = dict(users or {})  # username -> (password, securityToken)
        self.refresh_tokens = set(refresh_tokens)
        self.jwt_keys: dict[str, str] = {}  # connected app consumer key -> PEM public key of its certificate
        self.audience = "https://login.salesforce.com"  # JWT aud this login host accepts (a sandbox: test.…)
        self.page_size = page_size
        self.daily_limit = daily_limit
        self.bulk_polls_in_progress = 1  # GETs of job info answering InProgress before the job is done
        self.bulk_batch_size = BULK_BATCH  # rows of an ingest job's internal batch
        self.host = "acme.my.salesforce.com"  # the login host this fake plays (login.salesforce.com: no My Domain)
        self.store = Store()
        self.calls: Counter[str] = Counter()
        self.request_lines: list[str] = []  # "METHOD path?query" of every request, the query as sent
        self.faults: list[Fault] = []
        self.access_tokens: set[str] = set()
        self.ingest_jobs: dict[str, IngestJob] = {}
        self.query_jobs: dict[str, QueryJob] = {}
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.uploaded_bytes = 0
        self._fail_jobs: list[tuple[str, int]] = []
        self.locked: Counter[str] = Counter()  # lower-case external id or Id -> writes still refused with a lock
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # ---- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=160 * 1024 * 1024)
        routes = [
            ("POST", "/services/oauth2/token", self._token, "token"),
            ("GET", DATA + "/limits", self._limits, "limits"),
            ("GET", DATA + "/{endpoint:query|queryAll}", self._query, "query"),
            ("GET", DATA + "/{endpoint:query|queryAll}/{locator}", self._query_more, "queryMore"),
            ("POST", DATA + "/sobjects/{object}", self._sobject_create, "sobject"),
            ("GET", DATA + "/sobjects/{object}/describe", self._sobject_describe, "describe"),
            ("GET", DATA + "/sobjects/{object}/{id}", self._sobject_get, "sobject"),
            ("PATCH", DATA + "/sobjects/{object}/{id}", self._sobject_update, "sobject"),
            ("DELETE", DATA + "/sobjects/{object}/{id}", self._sobject_delete, "sobject"),
            ("GET", DATA + "/sobjects/{object}/{field}/{value}", self._sobject_get, "sobject"),
            ("PATCH", DATA + "/sobjects/{object}/{field}/{value}", self._sobject_upsert, "sobject"),
            ("POST", DATA + "/composite/sobjects", self._collection_insert, "collections"),
            ("PATCH", DATA + "/composite/sobjects", self._collection_update, "collections"),
            ("PATCH", DATA + "/composite/sobjects/{object}/{field}", self._collection_upsert, "collections"),
            ("POST", DATA + "/jobs/ingest", self._ingest_create, "bulk.create"),
            ("GET", DATA + "/jobs/ingest", self._ingest_list, "bulk.list"),
            ("GET", DATA + "/jobs/ingest/{job}", self._ingest_info, "bulk.info"),
            ("PATCH", DATA + "/jobs/ingest/{job}", self._ingest_state, "bulk.state"),
            ("DELETE", DATA + "/jobs/ingest/{job}", self._ingest_delete, "bulk.delete"),
            ("PUT", DATA + "/jobs/ingest/{job}/batches", self._ingest_upload, "bulk.upload"),
            # documented as unprocessedrecords; simple-salesforce asks for unprocessedRecords, which orgs answer too
            ("GET", DATA + "/jobs/ingest/{job}/{result:successfulResults|failedResults|unprocessed[rR]ecords}",
             self._ingest_results, "bulk.results"),
            ("POST", DATA + "/jobs/query", self._query_job_create, "bulkQuery.create"),
            ("GET", DATA + "/jobs/query/{job}", self._query_job_info, "bulkQuery.info"),
            ("GET", DATA + "/jobs/query/{job}/results", self._query_job_results, "bulkQuery.results"),
        ]
        for number, (method, path, handler, kind) in enumerate(routes):
            app.router.add_route(method, path, handler, name=f"{kind}:r{number}")
            # Salesforce answers the documented trailing-slash form too (simple-salesforce sends query/?q=)
            app.router.add_route(method, path + "/", handler, name=f"{kind}:r{number}s")
        return app

    # ---- test hooks --------------------------------------------------------------------------

    def define(self, name: str, fields: Mapping[str, FieldType | FieldDef], *, external_id: str | None = None,
               required: Iterable[str] = (), key_prefix: str | None = None) -> SObject:
        """Declare an sObject: field name -> type (string, email, double, int, boolean, date, datetime, id)."""
        with self._lock:
            return self.store.define(name, fields, external_id=external_id, required=required,
                                     key_prefix=key_prefix)

    def seed(self, name: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        with self._lock:
            return self.store.seed(name, rows)

    def records(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            sobject = self.store.get(name)
            return [dict(r) for r in sobject.records.values()] if sobject else []

    def reset(self) -> None:
        """Forget data, faults, jobs, counters and JWT keys; keep clients and users."""
        with self._lock:
            self.store = Store()
            self.calls.clear()
            self.faults.clear()
            self._fail_jobs.clear()
            self.locked.clear()
            self.ingest_jobs.clear()
            self.query_jobs.clear()
            self.cursors.clear()
            self.uploaded_bytes = 0
            self.bulk_polls_in_progress = 1
            self.bulk_batch_size = BULK_BATCH
            self.jwt_keys.clear()
            self.audience = "https://login.salesforce.com"
            self.host = "acme.my.salesforce.com"
            self.daily_limit = 15000

    def register_jwt_key(self, client_id: str, public_key_pem: str, *, audience: str | None = None) -> None:
        """Let the connected app ``client_id`` log in with JWTs signed by the matching private key."""
        with self._lock:
            self.jwt_keys[client_id] = public_key_pem
            self.audience = audience or self.audience

    def fail_next(self, count: int, status: int, *, kind: str = ".*", error_code: str = "SERVER_UNAVAILABLE",
                  message: str = "Server temporarily unavailable", retry_after: int | None = None) -> None:
        """The next ``count`` calls whose kind (e.g. ``query``, ``bulk.create``) matches the regex get ``status``."""
        body = json.dumps([{"message": message, "errorCode": error_code}])
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self.faults.append(Fault(re.compile(kind), count, status, body, headers))

    def time_out_after_applying(self, count: int, *, kind: str, status: int = 504, applied: bool = True,
                                meanwhile: Callable[[], None] | None = None) -> None:
        """The next ``count`` calls of ``kind`` run, and then the caller gets ``status`` (504 Gateway Timeout,
        502 Bad Gateway) instead of their answer: what a gateway in front of the org answers when the org was
        slower than its timeout (RFC 9110 15.6.5: the gateway "did not receive a timely response"). With
        ``applied=False`` the call never reached the org; ``meanwhile`` runs before the answer (another client of
        the org acting in that moment, e.g. ``open_job``)."""
        body = f"<html><body><h1>{status} Gateway Timeout</h1></body></html>"
        with self._lock:
            self.faults.append(Fault(re.compile(kind), count, status, body, {"Content-Type": "text/html"},
                                     after=applied, meanwhile=meanwhile))

    def open_job(self, object_name: str, operation: str, *, data: bytes | None = None) -> IngestJob:
        """An Open ingest job another process of the same integration user created now (with ``data``: already
        uploaded): Bulk API 2.0 jobs carry no mark of the process that made them."""
        sobject = self.store.get(object_name)
        assert sobject is not None
        with self._lock:
            job = IngestJob(f"750{next(self._ids):015d}", sobject.name, operation,
                            sobject.external_id if operation == "upsert" else None, "LF", "v62.0", self.store.stamp(),
                            data=data)
            self.ingest_jobs[job.id] = job
        return job

    def throttle(self, count: int, *, kind: str = ".*") -> None:
        """The org's concurrent request limit is reached for the next ``count`` calls: 403 REQUEST_LIMIT_EXCEEDED.
        (The daily allocation is ``daily_limit``: past it every call is refused, "TotalRequests Limit exceeded.")"""
        self.fail_next(count, 403, kind=kind, error_code="REQUEST_LIMIT_EXCEEDED",
                       message="ConcurrentRequests (Concurrent API Requests) Limit exceeded.")

    def unavailable(self, count: int, *, kind: str = ".*", retry_after: int | None = None) -> None:
        self.fail_next(count, 503, kind=kind, retry_after=retry_after)

    def fail_next_bulk_job(self, message: str = "InternalServerError : an unexpected error occurred", *,
                           after_batches: int = 0) -> None:
        """The next ingest job closed with UploadComplete ends in state Failed with this errorMessage, after
        processing ``after_batches`` of its internal batches (they stay applied; the rest is unprocessed), as a
        job does whose batch still fails after Salesforce's 10 retries: "the entire job is moved to the Failed
        state and remaining job data is not processed"
        (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/how_requests_are_processed.htm)."""
        with self._lock:
            self._fail_jobs.append((message, after_batches))

    def lock(self, keys: Iterable[str], *, times: int = 1) -> None:
        """The next ``times`` writes of each record (by external id value or Id) fail with UNABLE_TO_LOCK_ROW, as
        when another transaction holds the row (or its parent's) longer than Salesforce waits for the lock; the
        record is not changed. Per record in sObject Collections and in Bulk results alike."""
        with self._lock:
            for key in keys:
                self.locked[str(key).lower()] += times

    def advance(self, seconds: float) -> None:
        """The org's clock moves on: later changes are stamped, and answers dated, that much later."""
        with self._lock:
            self.store.clock_offset += timedelta(seconds=seconds)

    def begin(self) -> Transaction:
        """A long-running transaction (a batch Apex job, another integration's big load) that commits later."""
        return Transaction(self)

    @property
    def api_calls(self) -> int:
        """REST calls that count against the org's API limit (OAuth token requests do not)."""
        return sum(n for kind, n in self.calls.items() if kind != "token")

    # ---- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route
        kind = (route.name or "unknown:").split(":", 1)[0]
        with self._lock:
            self.calls[kind] += 1
            self.request_lines.append(f"{request.method} {request.raw_path}")
            fault = next((f for f in self.faults if f.remaining > 0 and f.kind.fullmatch(kind)), None)
            if fault is not None:
                fault.remaining -= 1
        if fault is not None and fault.meanwhile is not None and not fault.after:
            fault.meanwhile()
        if fault is not None and not fault.after:
            return web.Response(status=fault.status, text=fault.body,
                                headers={"Content-Type": "application/json", **fault.headers, "Date": self._date()})
        if kind != "token" and request.path.startswith("/services/data/"):
            token = request.headers.get("Authorization", "")
            if not token.startswith("Bearer ") or token[7:] not in self.access_tokens:
                return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            refused = self._version_refusal(request.path, kind)
            if refused is not None:
                return refused
            if self.api_calls > self.daily_limit:
                # "TotalRequests Limit exceeded." once the org's 24-hour allocation is used up
                # (https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/
                # salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm)
                return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        except web.HTTPMethodNotAllowed as error:
            allowed = ", ".join(sorted(error.allowed_methods))
            return _errors(405, "METHOD_NOT_ALLOWED",
                           f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}")
        if fault is not None:  # applied; the answer is lost behind a gateway
            if fault.meanwhile is not None:
                fault.meanwhile()
            return web.Response(status=fault.status, text=fault.body, headers={**fault.headers, "Date": self._date()})
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_calls}/{self.daily_limit}"
        response.headers["Date"] = self._date()
        return response

    @staticmethod
    def _version_refusal(path: str, kind: str) -> web.Response | None:
        """A retired version answers 410 Gone (Salesforce Help 000354473: "REST API returns 410: GONE"), one newer
        than the org's release or a Bulk API 2.0 route before 41.0 404, as any unknown resource does."""
        match = re.match(r"/services/data/v(\d+\.\d)(/|$)", path)
        version = float(match.group(1)) if match else LATEST_VERSION
        if version < RETIRED_BEFORE:
            return _errors(410, "GONE", f"API version {version} has been retired and is no longer available")
        if version > LATEST_VERSION or (kind.startswith(("bulk.", "bulkQuery.")) and version < BULK_V2_SINCE):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return None

    def _date(self) -> str:
        return format_datetime(self.store.now(), usegmt=True)

    # ---- OAuth -------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = str(form.get("client_id", "")), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            client_secret = secret
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            refused = self._jwt_refusal(str(form.get("assertion", "")))
            return _oauth_error(*refused) if refused else self._issue_token()
        if grant not in ("client_credentials", "refresh_token", "password"):
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if client_id not in self.clients:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if (grant != "refresh_token" or client_secret is not None) and self.clients[client_id] != client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        if grant == "client_credentials" and self.host in LOGIN_HOSTS:
            # the client credentials flow is sent to the org's My Domain login URL, never login/test.salesforce.com
            return _oauth_error("invalid_grant", "request not supported on this domain")
        if grant == "password":
            username, password = str(form.get("username", "")), str(form.get("password", ""))
            known = self.users.get(username)
            if known is None or password != known[0] + known[1]:
                return _oauth_error("invalid_grant", "authentication failure")
        if grant == "refresh_token" and form.get("refresh_token") not in self.refresh_tokens:
            return _oauth_error("invalid_grant", "expired access/refresh token")
        return self._issue_token()

    def _jwt_refusal(self, assertion: str) -> tuple[str, str] | None:
        """Why Salesforce would refuse this JWT bearer assertion, or None: the signature must verify with
        the certificate key registered for the connected app (iss), aud must be this login host, sub a
        user of the org, exp in the future (Salesforce allows at most a few minutes)."""
        try:
            issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        public_key = self.jwt_keys.get(issuer)
        if public_key is None:
            return "invalid_client_id", "client identifier invalid"
        try:
            claims = jwt.decode(assertion, public_key, algorithms=["RS256"], audience=self.audience,
                                options={"require": ["iss", "sub", "aud", "exp"]})
            if float(claims["exp"]) > self.store.now().timestamp() + JWT_MAX_LIFETIME:
                return "invalid_grant", "invalid assertion"
        except jwt.InvalidAudienceError:
            return "invalid_grant", "audience is invalid"
        except jwt.ExpiredSignatureError:
            return "invalid_grant", "expired authorization code"
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        if claims["sub"] not in self.users:
            return "invalid_grant", "user hasn't approved this consumer"
        return None

    def _issue_token(self) -> web.Response:
        token = f"{ORG_ID}!{secrets.token_urlsafe(24)}"
        with self._lock:
            self.access_tokens.add(token)
        return web.json_response({
            "access_token": token, "instance_url": self.url, "id": f"{self.url}/id/{ORG_ID}/{USER_ID}",
            "token_type": "Bearer", "issued_at": "1700000000000", "signature": secrets.token_urlsafe(32),
            "scope": "api",
        })

    # ---- limits and query --------------------------------------------------------------------

    async def _limits(self, request: web.Request) -> web.Response:
        used = self.api_calls
        return web.json_response({
            "DailyApiRequests": {"Max": self.daily_limit, "Remaining": max(self.daily_limit - used, 0)},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - len(self.query_jobs)},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - len(self.ingest_jobs)},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
        })

    def _run_soql(self, soql: str, *, include_deleted: bool = False) -> tuple[list[dict[str, Any]], Query]:
        with self._lock:
            query = parse(soql, self.store.schemas())
            sobject = self.store.get(query.object)
            assert sobject is not None
            records = [*sobject.records.values(), *(sobject.deleted.values() if include_deleted else ())]
            return query.run(records), query

    async def _query(self, request: web.Request) -> web.Response:
        soql = request.query.get("q", "")
        endpoint = request.match_info["endpoint"]
        try:
            rows, query = self._run_soql(soql, include_deleted=endpoint == "queryAll")
        except SoqlError as error:
            return _errors(400, error.code, error.message)
        version = request.match_info["version"]
        if query.count:
            return web.json_response({"totalSize": len(rows), "done": True, "records": []})
        records = [self._with_attributes(query.object, row, version) for row in rows]
        batch = self.page_size
        option = re.search(r"batchSize=(\d+)", request.headers.get("Sforce-Query-Options", ""))
        if option:
            batch = min(batch, max(200, int(option.group(1))))
        locator = f"01g{next(self._ids):015d}"
        with self._lock:
            self.cursors[locator] = records
        return web.json_response(self._page(records, f"{endpoint}/{locator}", 0, batch, version))

    @staticmethod
    def _with_attributes(object_name: str, row: dict[str, Any], version: str) -> dict[str, Any]:
        url = f"/services/data/{version}/sobjects/{object_name}/{row.get('Id', '')}"
        return {"attributes": {"type": object_name, "url": url}, **row}

    def _page(self, records: list[dict[str, Any]], cursor: str, offset: int, batch: int,
              version: str) -> dict[str, Any]:
        end = offset + batch
        page: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records),
                                "records": records[offset:end]}
        if end < len(records):
            page["nextRecordsUrl"] = f"/services/data/{version}/{cursor}-{end}"
        return page

    async def _query_more(self, request: web.Request) -> web.Response:
        locator, _, offset = request.match_info["locator"].rpartition("-")
        records = self.cursors.get(locator)
        if records is None or not offset.isdigit():
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return web.json_response(self._page(records, f"{request.match_info['endpoint']}/{locator}", int(offset),
                                            self.page_size, request.match_info["version"]))

    # ---- single-record sObject endpoints -----------------------------------------------------

    def _sobject(self, request: web.Request) -> SObject | web.Response:
        sobject = self.store.get(request.match_info["object"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return sobject

    async def _record_body(self, request: web.Request, sobject: SObject) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON object")
        if not isinstance(body, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from an array")
        unknown = [k for k in body if k != "attributes" and sobject.canonical(k) is None]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject.name}")
        return {k: v for k, v in body.items() if k != "attributes"}

    async def _sobject_write(self, request: web.Request, operation: str, **values: Any) -> web.Response:
        """One record created, updated or upserted: 201/200 with {id, success, errors[, created]}, 204 for an
        update, or 400 with the record's errors as Salesforce's error list."""
        sobject = self._sobject(request)
        if isinstance(sobject, web.Response):
            return sobject
        body = await self._record_body(request, sobject)
        if isinstance(body, web.Response):
            return body
        external_id = None
        if operation == "upsert":
            external_id = sobject.canonical(request.match_info["field"])
            if external_id is None or external_id != sobject.external_id:
                return _errors(400, "INVALID_FIELD", f"Field name provided, {request.match_info['field']} is not an "
                               f"External ID or indexed field for {sobject.name}")
            values = {external_id: request.match_info["value"]}
        with self._lock:
            record_id, created, errors = self._apply(sobject, operation, {**body, **values}, external_id,
                                                     from_csv=False)
        if errors and errors[0].status_code == "INVALID_CROSS_REFERENCE_KEY":  # an update of an unknown Id
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if errors and errors[0].status_code == "DUPLICATE_EXTERNAL_ID":
            # "If the value is not unique, the REST API returns a 300 response with the list of matching records"
            # (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert.htm)
            version = request.match_info["version"]
            matches = [f"/services/data/{version}/sobjects/{sobject.name}/{r['Id']}"
                       for r in sobject.matching(request.match_info["value"])]
            return web.json_response(matches, status=300)
        if errors:
            return web.json_response([{"message": e.message, "errorCode": e.status_code, "fields": list(e.fields)}
                                      for e in errors], status=400)
        if operation == "update":
            return web.Response(status=204)
        result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
        if operation == "upsert":
            result["created"] = created
        return web.json_response(result, status=201 if created else 200)

    async def _sobject_create(self, request: web.Request) -> web.Response:
        return await self._sobject_write(request, "insert")

    async def _sobject_update(self, request: web.Request) -> web.Response:
        return await self._sobject_write(request, "update", Id=request.match_info["id"])

    async def _sobject_upsert(self, request: web.Request) -> web.Response:
        return await self._sobject_write(request, "upsert")

    async def _sobject_get(self, request: web.Request) -> web.Response:
        """One record by Id (``…/Contact/{id}``) or by external id (``…/Contact/{field}/{value}``)."""
        sobject = self._sobject(request)
        if isinstance(sobject, web.Response):
            return sobject
        field_name = request.match_info.get("field")
        if field_name is None:
            record = sobject.find(request.match_info["id"])
        elif sobject.external_id is None or sobject.canonical(field_name) != sobject.external_id:
            return _errors(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
                           f"{field_name}")
        else:
            record = sobject.find_by_external_id(request.match_info["value"])
        if record is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return web.json_response(self._with_attributes(sobject.name, record, request.match_info["version"]))

    async def _sobject_delete(self, request: web.Request) -> web.Response:
        sobject = self._sobject(request)
        if isinstance(sobject, web.Response):
            return sobject
        with self._lock:
            _, _, errors = self._apply(sobject, "delete", {"Id": request.match_info["id"]}, None, from_csv=False)
        if errors:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return web.Response(status=204)

    async def _sobject_describe(self, request: web.Request) -> web.Response:
        sobject = self._sobject(request)
        if isinstance(sobject, web.Response):
            return sobject
        return web.json_response(sobject.describe())

    # ---- sObject Collections -----------------------------------------------------------------

    async def _collection_body(self, request: web.Request) -> tuple[list[dict[str, Any]], bool] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON object")
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _errors(400, "JSON_PARSER_ERROR", "records: expected an array of sObjects")
        if len(records) > COLLECTION_LIMIT:
            return _errors(400, "EXCEEDED_ID_LIMIT",
                           "record limit reached. cannot submit more than 200 records into this call")
        for record in records:
            sobject = self.store.get(str(record.get("attributes", {}).get("type", "")))
            unknown = [k for k in record if k != "attributes" and sobject and sobject.canonical(k) is None]
            if unknown and sobject:
                return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject.name}")
        return records, bool(body.get("allOrNone", False))

    def _collection(self, records: list[dict[str, Any]], all_or_none: bool, operation: str,
                    forced: SObject | None = None, external_id: str | None = None) -> web.Response:
        with self._lock:
            snapshot = {name: {k: dict(v) for k, v in o.records.items()} for name, o in self.store.objects.items()}
            key_name = external_id or ("Id" if operation == "update" else None)
            duplicates = _duplicate_keys([r.get(key_name) if key_name else None for r in records],
                                         fold=not (forced is not None and forced.case_sensitive and external_id))
            results = []
            for index, record in enumerate(records):
                sobject = self.store.get(str(record.get("attributes", {}).get("type", "")))
                if sobject is None or (forced is not None and sobject is not forced):
                    errors = [RecordError("INVALID_TYPE", "Must send a concrete entity type.")]
                    results.append({"id": None, "success": False, "errors": [e.json() for e in errors]})
                    continue
                values = {k: v for k, v in record.items() if k != "attributes"}
                if index in duplicates:  # within one call, as within a Bulk batch (_process_batch)
                    record_id, created, errors = None, False, [_duplicate_error(external_id,
                                                                                record.get(key_name or ""))]
                else:
                    record_id, created, errors = self._apply(sobject, operation, values, external_id, from_csv=False)
                result: dict[str, Any] = {"id": record_id, "success": not errors, "errors": [e.json() for e in errors]}
                if operation == "upsert":
                    result["created"] = created
                results.append(result)
            if all_or_none and any(not r["success"] for r in results):
                for name, saved in snapshot.items():
                    self.store.objects[name].records = saved
                    self.store.objects[name].reindex()
                rolled = RecordError("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all "
                                     "records were valid and the request was using AllOrNone header")
                for result in results:
                    if result["success"]:
                        result.update(id=None, success=False, errors=[rolled.json()])
        return web.json_response(results)

    async def _collection_insert(self, request: web.Request) -> web.Response:
        parsed = await self._collection_body(request)
        return parsed if isinstance(parsed, web.Response) else self._collection(*parsed, "insert")

    async def _collection_update(self, request: web.Request) -> web.Response:
        parsed = await self._collection_body(request)
        return parsed if isinstance(parsed, web.Response) else self._collection(*parsed, "update")

    async def _collection_upsert(self, request: web.Request) -> web.Response:
        sobject = self.store.get(request.match_info["object"])
        if sobject is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        external_id = sobject.canonical(request.match_info["field"])
        if external_id is None or external_id != sobject.external_id:
            return _errors(400, "INVALID_FIELD", f"Field name provided, {request.match_info['field']} is not an "
                           f"External ID or indexed field for {sobject.name}")
        parsed = await self._collection_body(request)
        if isinstance(parsed, web.Response):
            return parsed
        return self._collection(*parsed, "upsert", forced=sobject, external_id=external_id)

    def _apply(self, sobject: SObject, operation: str, values: dict[str, Any], external_id: str | None, *,
               from_csv: bool) -> tuple[str | None, bool, list[RecordError]]:
        """Insert, update or upsert one record; (id, created, errors). The caller holds the lock."""
        by_name = {sobject.canonical(k) or k: v for k, v in values.items()}
        keys = [str(by_name.get(name) or "") for name in ("Id", sobject.external_id) if name]
        locked = next((key for key in keys if key and self.locked[key.lower()] > 0), None)
        if locked is not None:
            self.locked[locked.lower()] -= 1
            found = sobject.find(locked) or sobject.find_by_external_id(locked)
            which = f" or 1 records: {found['Id']}" if found else ""
            return None, False, [RecordError("UNABLE_TO_LOCK_ROW",
                                             f"unable to obtain exclusive access to this record{which}")]
        if operation in ("delete", "hardDelete"):
            record = sobject.find(str(by_name.get("Id") or ""))
            if record is None:
                return None, False, [RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
            self.store.delete(sobject, record["Id"], hard=operation == "hardDelete")
            return record["Id"], False, []
        if operation == "insert":
            cleaned, errors = self.store.clean(sobject, values, from_csv=from_csv, creating=True)
            return (None, False, errors) if errors else (self.store.insert(sobject, cleaned), True, [])
        if operation == "update":
            record_id = str(by_name.pop("Id", "") or "")
            if not record_id:
                return None, False, [RecordError("MISSING_ARGUMENT", "Id not specified in an update call")]
            if len(record_id) not in (15, 18) or not record_id.startswith(sobject.key_prefix):
                return None, False, [RecordError("MALFORMED_ID", f"{sobject.name} ID: id value of incorrect "
                                                 f"type: {record_id}", ("Id",))]
            existing = next((k for k in sobject.records if k[:15] == record_id[:15]), None)
            if existing is None:
                return None, False, [RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
            cleaned, errors = self.store.clean(sobject, {k: v for k, v in values.items() if k.lower() != "id"},
                                               from_csv=from_csv, creating=False)
            if errors:
                return existing, False, errors
            self.store.update(sobject, existing, cleaned)
            return existing, False, []
        assert external_id is not None
        key = by_name.get(external_id)
        if key in (None, "", CSV_NULL):
            return None, False, [RecordError("MISSING_ARGUMENT", f"{external_id} not specified")]
        found = sobject.find_by_external_id(key)
        several = sobject.matching(key)
        if len(several) > 1:
            # "If the external ID is matched multiple times, then a 300 error is reported, and the record isn't
            # created or updated" (https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html):
            # the single-record upsert answers 300 (_sobject_write), Collections and Bulk refuse the record
            ids = ", ".join(r["Id"] for r in several)
            return None, False, [RecordError("DUPLICATE_EXTERNAL_ID", f"{sobject.name} {external_id}: more than one "
                                             f"record found for external id field: [{ids}]")]
        cleaned, errors = self.store.clean(sobject, {k: v for k, v in values.items() if k.lower() != "id"},
                                           from_csv=from_csv, creating=found is None)
        if errors:
            return (found or {}).get("Id"), False, errors
        if found is None:
            return self.store.insert(sobject, cleaned), True, []
        self.store.update(sobject, found["Id"], cleaned)
        return found["Id"], False, []

    # ---- Bulk API 2.0 ingest -----------------------------------------------------------------

    async def _ingest_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        operation, object_name = body.get("operation"), str(body.get("object", ""))
        if operation not in ("insert", "update", "upsert", "delete", "hardDelete"):
            return _errors(400, "INVALIDJOB", f"Invalid operation: {operation}")
        sobject = self.store.get(object_name)
        if sobject is None:
            return _errors(400, "INVALIDJOB", f"Unable to find object: {object_name}")
        external_id = body.get("externalIdFieldName")
        if operation == "upsert" and (not external_id or sobject.canonical(external_id) != sobject.external_id):
            return _errors(400, "INVALIDJOB", f"InvalidJob : Field name provided, {external_id} is not an External "
                           f"ID or indexed field for {sobject.name}")
        line_ending, delimiter = str(body.get("lineEnding", "LF")), str(body.get("columnDelimiter", "COMMA"))
        if line_ending not in ("LF", "CRLF") or delimiter not in DELIMITERS:
            return _errors(400, "INVALIDJOB", f"InvalidJob : Invalid lineEnding {line_ending} or columnDelimiter "
                           f"{delimiter}")
        job = IngestJob(f"750{next(self._ids):015d}", sobject.name, operation,
                        sobject.external_id if operation == "upsert" else None,
                        line_ending, request.match_info["version"], self.store.stamp(), delimiter)
        with self._lock:
            self.ingest_jobs[job.id] = job
        return web.json_response(job.info())

    async def _ingest_list(self, request: web.Request) -> web.Response:
        """Get All Jobs (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/
        get_all_jobs.htm): every ingest job, in one page (Salesforce pages by 1000 with nextRecordsUrl)."""
        with self._lock:
            records = [job.info() for job in self.ingest_jobs.values()]
        return web.json_response({"done": True, "records": records, "nextRecordsUrl": None})

    def _job(self, request: web.Request) -> IngestJob | web.Response:
        job = self.ingest_jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    async def _ingest_upload(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        data = await request.read()
        if job.state != "Open":
            return _errors(409, "INVALIDJOBSTATE", f"Job {job.id} is not in state Open (state {job.state})")
        if job.data is not None:
            return _errors(400, "BULK_API_ERROR", f"Found multiple contents for job: <{job.id}>, please 'Close' / "
                           "'Abort' / 'Delete' the current Job then create a new Job and make sure you only do "
                           "'PUT' once on a given Job.")
        with self._lock:
            job.data = data
            self.uploaded_bytes += len(data)
        return web.Response(status=201)

    async def _ingest_state(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        state = (await request.json()).get("state")
        if state == "UploadComplete" and job.state == "Open":
            with self._lock:
                job.state = "UploadComplete"
                job.fail_with, job.fail_after = self._fail_jobs.pop(0) if self._fail_jobs else (None, 0)
        elif state == "Aborted" and job.state in ("Open", "UploadComplete", "InProgress"):
            job.state = "Aborted"
        else:
            return _errors(400, "INVALIDJOBSTATE", f"Cannot change state of job {job.id} from {job.state} to {state}")
        return web.json_response(job.info())

    async def _ingest_delete(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        self.ingest_jobs.pop(job.id, None)
        return web.Response(status=204)

    async def _ingest_info(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        with self._lock:
            if job.state in ("UploadComplete", "InProgress"):
                job.state = "InProgress"
                job.polls += 1
                if job.polls > self.bulk_polls_in_progress:
                    self._process(job)
        return web.json_response(job.info())

    def _process(self, job: IngestJob) -> None:
        text = (job.data or b"").decode("utf-8-sig")
        if _line_endings(text) - {job.line_ending}:
            # "specify a line ending that matches the line ending used to create the CSV file"
            # (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/bulk_api_2_0_line_ending_header.htm)
            job.state = "Failed"
            job.error_message = ("ClientInputError : LineEnding is invalid on user data. Current LineEnding setting "
                                 f"is {job.line_ending}")
            return
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.delimiter]))
        if not rows:
            job.state, job.error_message = "Failed", "InvalidBatch : No content in batch"
            return
        job.columns, body = rows[0], rows[1:]
        sobject = self.store.get(job.object)
        assert sobject is not None
        unknown = [c for c in job.columns if sobject.canonical(c) is None]
        if unknown:
            job.state, job.error_message = "Failed", f"InvalidBatch : Field name not found : {unknown[0]}"
            job.unprocessed = body
            return
        if job.operation in ("delete", "hardDelete") and [c.lower() for c in job.columns] != ["id"]:
            job.state, job.error_message = "Failed", "InvalidBatch : The 'delete' batch must contain only 'Id'"
            job.unprocessed = body
            return
        if job.external_id and job.external_id.lower() not in [c.lower() for c in job.columns]:
            job.state, job.error_message = "Failed", f"InvalidBatch : Field name not provided: {job.external_id}"
            job.unprocessed = body
            return
        starts = reversed(range(0, len(body), self.bulk_batch_size))  # no order across batches: last first
        for done, start in enumerate(starts):
            batch = body[start: start + self.bulk_batch_size]
            if job.fail_with and done >= job.fail_after:
                job.unprocessed.extend(batch)
            else:
                self._process_batch(job, sobject, batch)
        job.state, job.error_message = ("Failed", job.fail_with) if job.fail_with else ("JobComplete", None)

    def _process_batch(self, job: IngestJob, sobject: SObject, rows: list[list[str]]) -> None:
        """One internal batch. Rows repeating a key (the external id of an upsert, the Id of an update) within it
        all fail; copies in different batches are each applied (Salesforce Help 000384876, "Error 'Duplicate Id
        Specified' or CSV with duplicate records on update or upsert": "within the same batch of records, the
        operation will fail with 'Duplicate Id Specified'"; in separate batches "the corresponding record in
        Salesforce is updated with the values each row")."""
        key_name = job.external_id or ("Id" if job.operation == "update" else None)
        key_column = next((i for i, c in enumerate(job.columns) if key_name and c.lower() == key_name.lower()), None)
        duplicates = _duplicate_keys([row[key_column] if key_column is not None and len(row) > key_column else None
                                      for row in rows], fold=not (job.external_id and sobject.case_sensitive))
        for index, row in enumerate(rows):
            if len(row) != len(job.columns):
                error = RecordError("INVALID_FIELD", "Invalid row: the number of values does not match the header")
                job.failures.append(("", error.csv(), row))
                continue
            if index in duplicates:
                job.failures.append(("", _duplicate_error(job.external_id, row[key_column or 0]).csv(), row))
                continue
            record_id, created, errors = self._apply(sobject, job.operation, dict(zip(job.columns, row, strict=True)),
                                                     job.external_id, from_csv=True)
            if errors:
                job.failures.append((record_id or "", errors[0].csv(), row))
            else:
                job.successes.append((record_id or "", created, row))

    async def _ingest_results(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if isinstance(job, web.Response):
            return job
        kind = request.match_info["result"].rstrip("/")
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            return _errors(400, "INVALIDJOBSTATE", f"Job {job.id} is not finished (state {job.state})")
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        sobject = self.store.get(job.object)
        # the job's columns named exactly as their fields' API names (see the module docstring)
        kept = [i for i, c in enumerate(job.columns) if sobject is not None and sobject.canonical(c) == c]
        names = [job.columns[i] for i in kept]
        if kind == "successfulResults":
            writer.writerow(["sf__Id", "sf__Created", *names])
            writer.writerows([record_id, "true" if created else "false", *_picked(row, kept)]
                             for record_id, created, row in job.successes)
        elif kind == "failedResults":
            writer.writerow(["sf__Id", "sf__Error", *names])
            writer.writerows([record_id, error, *_picked(row, kept)] for record_id, error, row in job.failures)
        else:
            writer.writerow(job.columns)
            writer.writerows(job.unprocessed)
        return web.Response(text=out.getvalue(), content_type="text/csv")

    # ---- Bulk API 2.0 query ------------------------------------------------------------------

    async def _query_job_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            rows, query = self._run_soql(str(body.get("query", "")),
                                         include_deleted=body.get("operation") == "queryAll")
        except SoqlError as error:
            return _errors(400, error.code, error.message)
        object_name = query.object
        job = QueryJob(f"750{next(self._ids):015d}", rows, query.fields)  # the header even without rows
        with self._lock:
            self.query_jobs[job.id] = job
        return web.json_response({"id": job.id, "operation": body.get("operation", "query"), "object": object_name,
                                  "state": job.state, "contentType": "CSV", "lineEnding": "LF",
                                  "columnDelimiter": "COMMA"})

    async def _query_job_info(self, request: web.Request) -> web.Response:
        job = self.query_jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        job.polls += 1
        job.state = "JobComplete" if job.polls > self.bulk_polls_in_progress else "InProgress"
        return web.json_response({"id": job.id, "state": job.state, "numberRecordsProcessed": len(job.rows)})

    async def _query_job_results(self, request: web.Request) -> web.Response:
        job = self.query_jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return _errors(400, "INVALIDJOBSTATE", f"Job {job.id} is not finished (state {job.state})")
        offset = int(request.query.get("locator") or 0)
        limit = int(request.query.get("maxRecords") or self.page_size)
        chunk = job.rows[offset: offset + limit]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(job.columns)
        writer.writerows([_csv_value(row.get(c)) for c in job.columns] for row in chunk)
        end = offset + len(chunk)
        return web.Response(text=out.getvalue(), content_type="text/csv", headers={
            "Sforce-Locator": str(end) if end < len(job.rows) else "null",
            "Sforce-NumberOfRecords": str(len(chunk)),
        })


class Transaction:
    """Changes made now and committed later. Each change is stamped when it is made (SystemModstamp is the
    DML time) but no query sees it before ``commit``, so a commit brings records stamped earlier than records
    a query has already returned. Salesforce documents this for getUpdated: "If Salesforce executes a
    long-running transaction on your instance, the value in this field [latestDateCovered] is the start time
    of that long-running transaction until it completes"
    (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getupdated_getupdatedresult.htm).
    """

    def __init__(self, fake: FakeSalesforce) -> None:
        self.fake = fake
        self.changes: list[tuple[str, str, dict[str, Any], str]] = []  # (object, external id, values, stamp)

    def update(self, object_name: str, external_id: str, values: Mapping[str, Any]) -> None:
        """Change the record whose external id is ``external_id``, stamped now, visible at commit."""
        with self.fake._lock:
            self.changes.append((object_name, external_id, dict(values), self.fake.store.stamp()))

    def commit(self) -> None:
        with self.fake._lock:
            store = self.fake.store
            for object_name, external_id, values, stamp in self.changes:
                sobject = store.get(object_name)
                record = sobject.find_by_external_id(external_id) if sobject else None
                assert sobject is not None and record is not None, f"no {object_name} {external_id!r}"
                cleaned, errors = store.clean(sobject, values, from_csv=False, creating=False)
                assert not errors, errors
                store.update(sobject, record["Id"], cleaned, stamp=stamp)
            self.changes.clear()


def _duplicate_error(external_id: str | None, key: Any) -> RecordError:
    """DUPLICATE_VALUE as Salesforce words it for a repeated external id ("Duplicate external id specified: 1") or
    a repeated Id ("Duplicate id specified: 0013000000auCyTAAU", Salesforce Help 000384876)."""
    if external_id:
        return RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {key}", (external_id,))
    return RecordError("DUPLICATE_VALUE", f"Duplicate id specified: {key}", ("Id",))


def _duplicate_keys(keys: list[Any], *, fold: bool = True) -> set[int]:
    seen: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        if key not in (None, "", CSV_NULL):
            seen.setdefault(str(key).lower() if fold else str(key), []).append(index)
    return {i for indices in seen.values() if len(indices) > 1 for i in indices}


def _line_endings(text: str) -> set[str]:
    """The line endings (LF, CRLF) that end records, outside quotes: a quoted value may hold either."""
    bare = re.sub(r'"[^"]*"', "", text) if '"' in text else text  # an escaped "" is two quoted runs
    return {name for name, found in (("CRLF", "\r\n" in bare), ("LF", re.search(r"(?<!\r)\n", bare))) if found}


def _picked(row: list[str], positions: list[int]) -> list[str]:
    return [row[i] if i < len(row) else "" for i in positions]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _errors(status: int, code: str, message: str) -> web.Response:
    return web.json_response([{"message": message, "errorCode": code}], status=status)


def _oauth_error(code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=400)
