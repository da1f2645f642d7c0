"""Salesforce client on simple-salesforce: OAuth login, the limits probe, SOQL paging and record writes.

Every call to the org goes through simple-salesforce (``limits``, ``query``/``query_more``,
sObject Collections through ``restful``, Bulk API 2.0 through ``bulk2``), over one
``requests.Session`` whose adapter does what the library does not: urllib3 ``Retry`` (honouring
``Retry-After``), a retry of 403 ``REQUEST_LIMIT_EXCEEDED`` (a rejected call, safe to resend), a
default timeout, and a call count.

What is retried depends on whether the call may be sent twice. 503 means Salesforce did not run the
call, so every call is retried on it. A 502 or 504 comes from a gateway and may come after the call
ran behind it, and so may a dropped answer: reads, record updates and upserts (the same values twice
are the same result) are retried on them, but an insert, a Bulk job's creation, upload or close is not
(a second insert is a duplicate record; a second upload or close of a job is refused, and
simple-salesforce then aborts a job that is running). Such a call raises ``MaybeApplied`` and its
caller checks before re-sending: inserted records are looked up by their external id, a created job
among the user's open jobs, an upload or a close by the job's state (salesforce_bulk).

One thing is written by hand: the OAuth token request (``POST {loginUrl}/services/oauth2/token``).
simple-salesforce 1.12 logs in only at ``https://{domain}.salesforce.com``, so a Connection's own
``loginUrl`` (a proxy, an ``http://`` dev org) is out of its reach; it has no refresh-token grant;
and it sends client credentials only to My Domain hosts. The JWT bearer assertion is signed here
with PyJWT the way simple-salesforce signs it (RS256; iss, sub, aud, exp). simple-salesforce also
builds every URL as ``https://<host>``: an ``http://`` instanceUrl or loginUrl is honoured by
forwarding that one origin back to ``http`` in the session adapter.

Small writes use sObject Collections (200 records a call, ``allOrNone=false``); large ones use Bulk
API 2.0 (walkme_dic.connectors.salesforce_bulk). Either way a record refused for a passing reason (a row
lock, the API limit) is sent once more on its own, and reported only if refused again. Messages never
contain credential values. For the engine (connectors/records.py) the client is a query source and
``SalesforceObject`` a record destination.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jwt
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession, SalesforceOperationError
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from walkme_dic import reasons
from walkme_dic.api.connection import SalesforceProvider
from walkme_dic.api.integration import SalesforceDestination
from walkme_dic.connectors.base import ProbeResult
from walkme_dic.connectors.common import refuse_redirects, retry_delay
from walkme_dic.connectors.records import Record, WriteReport
from walkme_dic.errors import (
    AuthenticationError,
    NotFoundError,
    PartlyApplied,
    PermanentError,
    TransientError,
    ValidationError,
)

COLLECTION_SIZE = 200
# simple-salesforce holds a job's CSV in memory as parsed rows and strings (several times the file), so jobs are
# cut at 10 MB, not at Salesforce's 100 MB upload limit: the 1M-record bench peaks at 170 MB RSS (378 MB with
# 100 MB jobs) in 5 jobs and 24 API calls.
BULK_JOB_BYTES = 10 * 1024 * 1024
OPERATIONS = ("insert", "update", "upsert")
RETRIABLE_STATUS = frozenset({502, 503, 504})
NOT_RUN_STATUS = frozenset({503})  # Salesforce unavailable: the call did not run
MAYBE_RUN_STATUS = frozenset({502, 504})  # a gateway's answer: the call may have run behind it
SOQL_ERRORS = {"INVALID_FIELD", "MALFORMED_QUERY", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR",
               "INVALID_QUERY_LOCATOR", "QUERY_TOO_COMPLICATED", "INVALID_OPERATION"}
# Per-record refusals that say nothing about the record itself: a row lock another transaction held past
# Salesforce's wait ("UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record") and the API limit. The
# record was not applied; it is sent once more, in a call or job of its own, as the Bulk API guide says of failures:
# "create a new ingest job to process the records that weren't processed"
# (https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_understanding_bulk2_ingest.htm).
TRANSIENT_RECORD_ERRORS = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED"})
SENT_AGAIN = " (refused again when sent a second time)"
# "If the external ID is matched multiple times, then a 300 error is reported, and the record isn't created or
# updated" (https://developer.salesforce.com/docs/platform/api-rest/guide/dome-upsert.html)
AMBIGUOUS_KEY = ("; several records hold this external id, so Salesforce cannot tell which to update: merge them or "
                 "make the field Unique")
# Refused 403 REQUEST_LIMIT_EXCEEDED: the org's API requests of a rolling 24 hours are used up. Unlike the
# concurrency limit ("ConcurrentRequests ... Limit exceeded"), a retry within the run cannot help.
DAILY_LIMIT = b"TotalRequests Limit exceeded"
OLDEST_VERSION = 31.0  # "REST API returns 410: GONE" for 7.0 to 30.0, retired in Summer '25 (Salesforce Help 000354473)
BULK_V2_VERSION = 41.0  # Bulk API 2.0 ingest came with API version 41.0
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/services/oauth2/token"
T = TypeVar("T")


@dataclass(frozen=True)
class Grant:
    """One OAuth flow chosen from the Secret's keys: its name, the token form, and who logs in."""

    flow: str
    form: dict[str, str]
    who: str


def choose_grant(credentials: Mapping[str, str], login_url: str, *, now: datetime | None = None) -> Grant:
    """JWT bearer (privateKey), refresh token, username-password, or client credentials, in that order."""
    creds = {k: v for k, v in credentials.items() if v}
    if not creds.get("clientId"):
        raise AuthenticationError("the Salesforce Secret needs clientId (the connected app's consumer key); "
                                  f"found keys: {', '.join(sorted(creds)) or 'none'}")
    client_id = creds["clientId"]
    app = f"clientId {client_id!r}"
    form = {"client_id": client_id, **({"client_secret": creds["clientSecret"]} if creds.get("clientSecret") else {})}
    if creds.get("privateKey"):
        if not creds.get("username"):
            raise AuthenticationError("the Salesforce Secret has privateKey (JWT bearer flow) but no username: "
                                      "add the username of the user the connected app acts as")
        expires = (now or datetime.now(UTC)) + timedelta(minutes=3)
        claims = {"iss": client_id, "sub": creds["username"], "aud": jwt_audience(login_url),
                  "exp": int(expires.timestamp())}
        try:
            assertion = jwt.encode(claims, creds["privateKey"], algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise AuthenticationError(f"the Salesforce Secret's privateKey is not a PEM RSA private key "
                                      f"({type(error).__name__}); put the connected app's certificate key there") \
                from None
        return Grant("JWT bearer", {"grant_type": JWT_BEARER, "assertion": assertion},
                     f"user {creds['username']!r} of {app}")
    if creds.get("refreshToken"):
        return Grant("refresh token", {**form, "grant_type": "refresh_token", "refresh_token": creds["refreshToken"]},
                     app)
    if creds.get("username"):
        password = creds.get("password", "") + creds.get("securityToken", "")
        return Grant("username-password", {**form, "grant_type": "password", "username": creds["username"],
                                           "password": password}, f"user {creds['username']!r} of {app}")
    if not creds.get("clientSecret"):
        raise AuthenticationError("the Salesforce Secret needs clientSecret with clientId (client credentials), "
                                  "privateKey and username (JWT bearer), refreshToken, or username and password")
    host = urlsplit(login_url).hostname or ""
    if host in LOGIN_HOSTS:
        raise AuthenticationError(f"the client credentials flow is not served at {host}: set the Connection's "
                                  "loginUrl (or instanceUrl) to the org's My Domain, "
                                  "https://<domain>.my.salesforce.com (Setup > My Domain)")
    return Grant("client credentials", {**form, "grant_type": "client_credentials"}, app)


def jwt_audience(login_url: str) -> str:
    """The JWT ``aud``: the login host itself for login/test.salesforce.com and custom hosts; for a My Domain
    host, test.salesforce.com when it is a sandbox's (``*.sandbox.my.salesforce.com``), else login."""
    host = urlsplit(login_url).hostname or ""
    if host.endswith(".my.salesforce.com"):
        return "https://test.salesforce.com" if ".sandbox." in host else "https://login.salesforce.com"
    return login_url.rstrip("/")


class MaybeApplied(TransientError):
    """A call that must not run twice got no clear answer (a gateway's 502/504, a dropped answer): it may have
    run. The caller checks what happened before re-sending."""


def sent_twice_is_harmless(method: str, url: str) -> bool:
    """Reads, deletes, the token request, and record updates and upserts (PATCH of sObjects / Collections);
    not inserts (POST), nor a Bulk job's creation, upload (PUT) or state change (PATCH of jobs/ingest/{id})."""
    if method in ("GET", "HEAD", "DELETE") or TOKEN_PATH in url:
        return True
    return method == "PATCH" and "/jobs/" not in url


class SalesforceAdapter(HTTPAdapter):
    """Retries, a default timeout, origin forwarding (``https://host`` → another origin) and a call count."""

    def __init__(self, *, attempts: int, base_delay: float, timeout: float, forward: Mapping[str, str]) -> None:
        self.attempts, self.base_delay, self.timeout = max(1, attempts), base_delay, timeout
        self.forward = dict(forward)
        self.calls = 0
        self.server_time: datetime | None = None  # the Date of Salesforce's latest answer
        self.maybe_applied = False  # the latest call must not run twice and got a 502/504 or no answer
        options: dict[str, Any] = {"total": self.attempts - 1, "backoff_factor": base_delay, "backoff_max": 60,
                                   "raise_on_status": False, "respect_retry_after_header": True,
                                   "allowed_methods": None}
        self.retry_any = Retry(status_forcelist=RETRIABLE_STATUS, **options)
        self.retry_once_only = Retry(status_forcelist=NOT_RUN_STATUS, read=0, other=0, **options)
        super().__init__(max_retries=self.retry_any)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        request.url = self._forwarded(str(request.url))
        counted = TOKEN_PATH not in request.url  # as Salesforce counts: token requests are free
        harmless = sent_twice_is_harmless(str(request.method), request.url)
        self.max_retries = self.retry_any if harmless else self.retry_once_only  # one call at a time per client
        self.maybe_applied = False
        for attempt in range(1, self.attempts + 1):
            self.calls += counted
            try:
                response = super().send(request, **kwargs)
            except requests.RequestException as error:
                self.maybe_applied = not harmless and not _never_sent(error)
                raise
            self._note_date(response.headers.get("Date"))
            self.maybe_applied = not harmless and response.status_code in MAYBE_RUN_STATUS
            if response.status_code != 403 or attempt == self.attempts or \
                    b"REQUEST_LIMIT_EXCEEDED" not in response.content or DAILY_LIMIT in response.content:
                return response
            response.close()
            time.sleep(retry_delay(attempt, self.base_delay, None))
        raise AssertionError("unreachable")

    def _note_date(self, value: str | None) -> None:
        with contextlib.suppress(TypeError, ValueError):
            moment = parsedate_to_datetime(value) if value else None
            if moment is not None and moment.tzinfo is not None:
                self.server_time = moment.astimezone(UTC)

    def _forwarded(self, url: str) -> str:
        parts = urlsplit(url)
        target = self.forward.get(f"{parts.scheme}://{parts.netloc}") or self.forward.get(f"{parts.scheme}://")
        if not target:
            return url
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return target.rstrip("/") + rest


class SalesforceClient:
    """One org. ``api_calls`` counts REST calls as sent (a REQUEST_LIMIT_EXCEEDED resend counts again; urllib3's
    5xx retries below the adapter do not), token requests excluded as Salesforce does.

    ``forward`` maps origins to others (``{"https://": "http://127.0.0.1:8080"}`` sends every call to a
    loopback org); an ``http://`` instanceUrl or loginUrl is added to it automatically."""

    def __init__(self, spec: SalesforceProvider, credentials: Mapping[str, str], *, max_attempts: int = 5,
                 retry_base_delay: float = 1.0, poll_interval: float = 2.0,
                 bulk_max_bytes: int = BULK_JOB_BYTES, timeout: float = 120,
                 forward: Mapping[str, str] | None = None) -> None:
        self.login_url = (spec.login_url or spec.instance_url or "").rstrip("/")
        self.instance_url = (spec.instance_url or spec.login_url or "").rstrip("/")
        self.api_version = spec.api_version
        self._credentials = dict(credentials)
        self.poll_interval = poll_interval
        self.bulk_max_bytes = bulk_max_bytes
        self.adapter = SalesforceAdapter(attempts=max_attempts, base_delay=retry_base_delay, timeout=timeout,
                                         forward=forward or {})
        self.session = requests.Session()
        self.session.hooks["response"].append(refuse_redirects)
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
        for url in (self.login_url, self.instance_url):
            self._keep_plain_http(url)
        self._sf: Salesforce | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        self.grant: Grant | None = None
        self.identity: tuple[str, str] | None = None  # (org id, user id) from the token answer

    @property
    def api_calls(self) -> int:
        return self.adapter.calls

    def _keep_plain_http(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "http":
            self.adapter.forward.setdefault(f"https://{parts.netloc}", f"http://{parts.netloc}")

    # ---- OAuth -------------------------------------------------------------------------------

    def _login(self) -> Salesforce:
        if float(self.api_version) < OLDEST_VERSION:
            raise PermanentError(f"salesforce.apiVersion {self.api_version}: Salesforce retired API versions before "
                                 f"{OLDEST_VERSION} (they answer 410 Gone); use a current one such as 62.0",
                                 reason=reasons.INVALID_SPEC)
        self.grant = grant = choose_grant(self._credentials, self.login_url)
        try:
            response = self.session.post(self.login_url + TOKEN_PATH, data=grant.form)
        except requests.RequestException as error:
            raise TransientError(f"cannot reach the Salesforce login host {self.login_url}: "
                                 f"{type(error).__name__}") from None
        if response.status_code in RETRIABLE_STATUS:
            raise TransientError(f"the Salesforce login host {self.login_url} kept answering {response.status_code}")
        if response.status_code != 200:
            error, description = _oauth_error(response)
            raise AuthenticationError(
                f"Salesforce refused the {grant.flow} login for {grant.who} at {self.login_url}: "
                f"{error} ({description}); check the keys of the Connection's Secret")
        body = response.json()
        self.instance_url = str(body.get("instance_url") or self.instance_url).rstrip("/")
        self._keep_plain_http(self.instance_url)
        org, _, user = str(body.get("id", "")).rstrip("/").rpartition("/")
        self.identity = (org.rpartition("/")[2], user) if org else None
        self._sf = Salesforce(instance_url=self.instance_url, session_id=str(body["access_token"]),
                              session=self.session, version=self.api_version)
        return self._sf

    def call(self, what: str, action: Callable[[Salesforce], T], *, relogin: bool = True) -> T:
        """``action`` on the logged-in org, with simple-salesforce's errors turned into DicErrors; an expired
        session logs in again once (unless ``relogin`` is False: a call that must not run twice)."""
        sf = self._sf or self._login()
        try:
            try:
                return action(sf)
            except SalesforceExpiredSession:
                if not relogin:
                    raise
                return action(self._login())
        except SalesforceError as error:
            if self.adapter.maybe_applied:
                raise MaybeApplied(f"{what}: Salesforce answered {error.status} and the call may have run") from None
            raise _translate(error, what, self.adapter.attempts) from None
        except SalesforceOperationError as error:
            reason = str(error).removeprefix("Job failure. Response content: ")
            raise PermanentError(f"{what}: the job did not complete: {reason}",
                                 reason=reasons.BULK_JOB_FAILED) from None
        except requests.RequestException as error:
            if self.adapter.maybe_applied:
                raise MaybeApplied(f"{what}: the answer from Salesforce was lost ({type(error).__name__}) and the "
                                   "call may have run") from None
            raise TransientError(f"cannot reach Salesforce at {self.instance_url} for {what}: "
                                 f"{type(error).__name__}") from None

    # ---- probe and query ---------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        self._login()
        limits = self.call("limits", lambda sf: sf.limits())
        daily = limits.get("DailyApiRequests", {})
        assert self.grant is not None
        org, user = self.identity or ("?", "?")
        return ProbeResult(f"Salesforce org {org} at {self.instance_url}: logged in with the {self.grant.flow} flow "
                           f"as {self.grant.who} (user {user}); API requests remaining "
                           f"{daily.get('Remaining', '?')}/{daily.get('Max', '?')}")

    def covered_until(self, lookback_seconds: int) -> datetime:
        """Where an incremental read ends, as getUpdated's ``latestDateCovered`` does: every change stamped before
        the org's time (logging in first if need be) less ``lookback_seconds`` has committed, given transactions
        that take less than that. The org's time is the ``Date`` of its latest answer (whole seconds), so this
        machine's clock does not matter; without one (a proxy that drops it) this machine's clock is used."""
        if self._sf is None:
            self._login()
        now = self.adapter.server_time or datetime.now(UTC).replace(microsecond=0)
        return now - timedelta(seconds=lookback_seconds)

    def query(self, soql: str) -> Iterator[dict[str, object]]:
        """Records of a SOQL query, page by page (nextRecordsUrl), without their ``attributes``."""
        page = self.call("SOQL", lambda sf: sf.query(soql))
        while True:
            for record in page.get("records", []):
                yield _strip_attributes(record)
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self.call("SOQL", lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True))

    # ---- writes ------------------------------------------------------------------------------

    def describe(self, object_name: str) -> dict[str, Any]:
        """The object's describe (its fields' API names and properties), fetched once per client."""
        key = object_name.lower()
        if key not in self._describes:
            self._describes[key] = dict(self.call(f"describe {object_name}",
                                                  lambda sf: getattr(sf, object_name).describe()))
        return self._describes[key]

    def external_id_case_sensitive(self, object_name: str, field_name: str) -> bool:
        """Whether the object's external id field tells ``ABC`` from ``abc``: Salesforce compares external ids
        case-insensitively unless the field is Unique and "case sensitive" (describe's ``caseSensitive``)."""
        fields = self.describe(object_name).get("fields", [])
        return any(str(f.get("name", "")).lower() == field_name.lower() and bool(f.get("caseSensitive"))
                   for f in fields)

    def write(self, object_name: str, operation: str, records: Iterable[dict[str, object]],
              external_id_field: str | None, *, bulk_threshold: int = 2000,
              fields: Iterable[str] = ()) -> WriteReport:
        """Insert, update (by Id) or upsert (by external id) records; per-record failures are reported,
        not raised. Fewer than ``bulk_threshold`` records go through sObject Collections, more through
        Bulk API 2.0. Records are read once, as a stream; at most ``bulk_threshold`` are held at once.

        A field a record leaves out is left as it is in Salesforce; one it holds as None is cleared (null in
        JSON, ``#N/A`` in a Bulk CSV). ``fields`` names every field records may carry (a Bulk job's columns,
        beside those of the first records)."""
        if operation not in OPERATIONS:
            raise ValidationError(f"salesforce.operation: {operation!r} is not one of {', '.join(OPERATIONS)}")
        if operation == "upsert" and not external_id_field:
            raise ValidationError("salesforce.externalIdField: upsert needs the external id field to match on")
        before = self.api_calls
        iterator = iter(records)
        head = list(islice(iterator, bulk_threshold))
        if len(head) < bulk_threshold:
            report = self._write_collections(object_name, operation, head, external_id_field)
        else:
            from walkme_dic.connectors.salesforce_bulk import BulkIngest

            if float(self.api_version) < BULK_V2_VERSION:
                raise ValidationError(f"salesforce.apiVersion {self.api_version}: {len(head)} or more records go "
                                      f"through Bulk API 2.0, which needs API version {BULK_V2_VERSION} or later")
            try:
                report = BulkIngest(self, object_name, operation, external_id_field).run(head, iterator, fields)
            except PartlyApplied as error:
                error.report.failed.sort()
                error.report.api_calls = self.api_calls - before
                raise
        report.api_calls = self.api_calls - before
        return report

    def _write_collections(self, object_name: str, operation: str, records: list[dict[str, object]],
                           external_id_field: str | None) -> WriteReport:
        """One call per 200 records; the records refused with a transient error (TRANSIENT_RECORD_ERRORS) are
        sent once more, in a call of their own after a pause, and refused for good only if that fails too."""
        report = WriteReport()
        for offset in range(0, len(records), COLLECTION_SIZE):
            batch = records[offset: offset + COLLECTION_SIZE]
            again: list[int] = []
            for position, result in self._collection(object_name, operation, batch, offset,
                                                     list(range(len(batch))), external_id_field, report):
                if result.get("success"):
                    report.written += 1
                elif transient_record_error(result.get("errors") or []):
                    again.append(position)
                else:
                    report.failed.append((offset + position, record_error(result.get("errors") or [])))
            if again:
                time.sleep(retry_delay(1, self.adapter.base_delay, None))
                for position, result in self._collection(object_name, operation, batch, offset, again,
                                                         external_id_field, report):
                    if result.get("success"):
                        report.written += 1
                    else:
                        report.failed.append((offset + position, record_error(result.get("errors") or [],
                                                                              sent_again=True)))
        report.failed.sort()
        return report

    def _collection(self, object_name: str, operation: str, batch: list[dict[str, object]], offset: int,
                    positions: list[int], external_id_field: str | None,
                    report: WriteReport) -> list[tuple[int, dict[str, Any]]]:
        """One sObject Collections call for ``positions`` of ``batch``: (position, result) in order. An insert that
        may have run is checked, not re-sent (_not_inserted); what it found counts in ``report``."""
        path = "composite/sobjects" + (f"/{object_name}/{external_id_field}" if operation == "upsert" else "")
        method = "POST" if operation == "insert" else "PATCH"
        pending = positions  # not yet known to be applied or refused
        for attempt in range(1, self.adapter.attempts + 1):
            body = {"allOrNone": False, "records": [
                {"attributes": {"type": object_name}, **{k: _json_value(v) for k, v in batch[i].items()}}
                for i in pending]}
            try:
                results = self.call(f"{operation} {object_name}",
                                    lambda sf, body=body: sf.restful(path, method=method, json=body)) or []
            except MaybeApplied as error:
                if attempt == self.adapter.attempts:
                    raise
                pending = self._not_inserted(object_name, batch, offset, pending, external_id_field, error, report)
                if not pending:
                    return []
                continue
            return list(zip(pending, results, strict=False))
        raise AssertionError("unreachable")

    def _not_inserted(self, object_name: str, batch: list[dict[str, object]], offset: int, pending: list[int],
                      external_id_field: str | None, error: MaybeApplied, report: WriteReport) -> list[int]:
        """After an insert that may have run: the positions whose records are not in the org, looked up by their
        external id (those found count as written). Without an external id on every record nothing can be
        looked up, and re-sending could insert them twice: they are reported failed, with why, not re-sent."""
        keys = {i: batch[i].get(external_id_field) for i in pending} if external_id_field else {}
        if not external_id_field or any(v in (None, "") for v in keys.values()):
            reason = (f"{error}; not sent again, since it may be in {object_name} already and a second insert "
                      "would duplicate it: check for it (with externalIdField set, or operation upsert, the "
                      "operator checks itself)")
            report.failed.extend((offset + i, reason) for i in pending)
            return []
        literals = ", ".join(soql_string(str(v)) for v in dict.fromkeys(keys.values()))
        found = {str(r.get(external_id_field, "")).lower() for r in self.query(
            f"SELECT Id, {external_id_field} FROM {object_name} WHERE {external_id_field} IN ({literals})")}
        missing = [i for i in pending if str(keys[i]).lower() not in found]
        report.written += len(pending) - len(missing)
        return missing


@dataclass(frozen=True)
class SalesforceObject:
    """A Salesforce object as a record destination: :meth:`SalesforceClient.write` with the Integration's
    ``destination.salesforce`` (object, operation, externalIdField, bulkThreshold) and the mapping's ``fields``
    bound. A write that stops part way raises PartlyApplied, ``report`` filled with what it did."""

    client: SalesforceClient
    target: SalesforceDestination
    fields: list[str]

    @property
    def key(self) -> str | None:
        """What records are matched by: Id for an update, else the external id field (None: inserts alone)."""
        return "Id" if self.target.operation == "update" else self.target.external_id_field

    def case_sensitive(self) -> bool:
        """Whether the external id field tells ``ABC`` from ``abc`` (describes the object); Id is taken as not."""
        key = self.key
        return key not in (None, "Id") and self.client.external_id_case_sensitive(self.target.object, str(key))

    def write(self, records: Iterable[Record], report: WriteReport) -> WriteReport:
        target = self.target
        try:
            done = self.client.write(target.object, target.operation, records, target.external_id_field,
                                     bulk_threshold=target.bulk_threshold, fields=self.fields)
        except PartlyApplied as error:
            report.add(error.report)
            raise
        return report.add(done)


def soql_string(value: str) -> str:
    """A SOQL string literal (backslash and quote escaped, as the SOQL reference says)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def record_error(errors: list[dict[str, Any]], *, sent_again: bool = False) -> str:
    """'FIELD: message' for the first error of a record (or 'STATUS_CODE: message' without a field)."""
    if not errors:
        return "rejected by Salesforce without a reason"
    first = errors[0]
    code = str(first.get("statusCode", ""))
    reason = error_reason(code, str(first.get("message", "")), first.get("fields") or [])
    return reason + (AMBIGUOUS_KEY if code == "DUPLICATE_EXTERNAL_ID" else "") + (SENT_AGAIN if sent_again else "")


def transient_record_error(errors: list[dict[str, Any]]) -> bool:
    """A record refused for a passing reason (a lock, the API limit): it was not applied and may be sent again."""
    return bool(errors) and str(errors[0].get("statusCode", "")) in TRANSIENT_RECORD_ERRORS


def error_reason(code: str, message: str, fields: list[str]) -> str:
    prefix = ", ".join(fields) if fields else code
    return message if prefix and message.startswith(f"{prefix}:") else f"{prefix}: {message}"


def _never_sent(error: requests.RequestException) -> bool:
    """A connection that could not be opened: the request never left."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _strip_attributes(record: dict[str, Any]) -> dict[str, object]:
    return {k: (_strip_attributes(v) if isinstance(v, dict) else v) for k, v in record.items() if k != "attributes"}


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _translate(error: SalesforceError, what: str, attempts: int) -> Exception:
    """The DicError for a simple-salesforce error (its ``content`` is Salesforce's error list)."""
    content = error.content
    first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else {}
    code, message = str(first.get("errorCode", "")), str(first.get("message", content if not first else "")).strip()
    status = error.status
    if status == 401:
        return AuthenticationError(f"{what}: Salesforce rejected the session ({code}: {message})")
    if code in SOQL_ERRORS and what == "SOQL":
        return PermanentError(f"SOQL: {_soql_reason(message, code)}", reason=reasons.INVALID_QUERY)
    if code == "REQUEST_LIMIT_EXCEEDED" and DAILY_LIMIT.decode() in message:
        return TransientError(f"{what}: the org's API requests of the last 24 hours are used up ({message}); the "
                              "next run tries again (Setup > Company Information shows the allocation)",
                              reason=reasons.SALESFORCE_THROTTLED)
    if status == 300:  # a single-record upsert whose external id several records hold: the content lists them
        return PermanentError(f"{what}: several records hold this external id ({content}){AMBIGUOUS_KEY}",
                              reason=reasons.AMBIGUOUS_EXTERNAL_ID)
    if status == 410:
        return PermanentError(f"{what}: Salesforce no longer serves this API version ({code}: {message}); set "
                              "salesforce.apiVersion to a current one", reason=reasons.INVALID_SPEC)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return TransientError(f"{what}: Salesforce kept answering {status} REQUEST_LIMIT_EXCEEDED after {attempts} "
                              f"attempts ({message})", reason=reasons.SALESFORCE_THROTTLED)
    if status == 404:
        return NotFoundError(f"{what}: Salesforce has no such resource ({code}: {message})")
    if status == 403:
        return PermanentError(f"{what}: Salesforce denied access ({code}: {message}); check the integration "
                              "user's permissions", reason=reasons.ACCESS_DENIED)
    if status in RETRIABLE_STATUS:
        return TransientError(f"{what}: Salesforce kept answering {status} ({code}: {message}) after {attempts} "
                              "attempts", reason=reasons.SALESFORCE_UNAVAILABLE)
    if status >= 500:
        return TransientError(f"{what}: Salesforce answered {status} ({code}: {message})")
    return PermanentError(f"{what}: Salesforce answered {status} ({code}: {message})")


def _soql_reason(message: str, code: str) -> str:
    """Salesforce's reason without the echoed query and caret, and without the custom-field advice."""
    lines = [line for line in message.splitlines() if line.strip()]
    reason = (lines[-1] if lines else message).split(" If you are attempting", 1)[0].rstrip(".")
    position = next((line for line in lines if line.startswith("ERROR at Row:")), None)
    if position:
        row_col = position.removeprefix("ERROR at Row:").replace(":Column:", ", column ")
        return f"{reason} ({code} at row {row_col})"
    return f"{reason} ({code})"


def _oauth_error(response: requests.Response) -> tuple[str, str]:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return str(body.get("error", "error")), str(body.get("error_description", ""))
    return f"HTTP {response.status_code}", response.reason or ""
