"""Salesforce client: OAuth login, the limits probe, SOQL queries and record writes.

Plain ``requests`` against the documented REST endpoints rather than simple-salesforce: that
library builds every URL as ``https://<host>``, so it cannot reach an ``http://`` instance such as
the loopback fake the tests use, and it has no retry policy. Small writes use sObject
Collections (200 records a call, ``allOrNone=false``); large ones use Bulk API 2.0
(walkme_dic.connectors.salesforce_bulk). Messages never contain credential values.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

import requests
import urllib3

from walkme_dic.api.connection import SalesforceProvider
from walkme_dic.connectors.base import ProbeResult, WriteReport
from walkme_dic.errors import AuthenticationError, NotFoundError, PermanentError, TransientError, ValidationError

COLLECTION_SIZE = 200
OPERATIONS = ("insert", "update", "upsert")
RETRIABLE_STATUS = {502, 503, 504}
SOQL_ERRORS = {"INVALID_FIELD", "MALFORMED_QUERY", "INVALID_TYPE", "INVALID_QUERY_FILTER_OPERATOR",
               "INVALID_QUERY_LOCATOR", "QUERY_TOO_COMPLICATED", "INVALID_OPERATION"}


class SalesforceClient:
    """One org. ``api_calls`` counts REST calls (token requests excluded, as Salesforce does)."""

    def __init__(self, spec: SalesforceProvider, credentials: Mapping[str, str], *, max_attempts: int = 5,
                 retry_base_delay: float = 1.0, poll_interval: float = 2.0, bulk_timeout: float = 3600,
                 bulk_max_bytes: int = 100 * 1024 * 1024, timeout: float = 120) -> None:
        base = spec.instance_url or spec.login_url or ""
        self.login_url = (spec.login_url or base).rstrip("/")
        self.instance_url = base.rstrip("/")
        self.data_path = f"/services/data/v{spec.api_version}"
        self._credentials = dict(credentials)
        self.client_id = self._credentials.get("clientId", "")
        self.max_attempts = max(1, max_attempts)
        self.retry_base_delay = retry_base_delay
        self.poll_interval = poll_interval
        self.bulk_timeout = bulk_timeout
        self.bulk_max_bytes = bulk_max_bytes
        self.timeout = timeout
        self.session = requests.Session()
        self.api_calls = 0
        self._token: str | None = None

    # ---- OAuth -------------------------------------------------------------------------------

    def _grant(self) -> tuple[str, dict[str, str]]:
        creds = self._credentials
        if not creds.get("clientId"):
            raise AuthenticationError("the Salesforce Secret needs clientId (and clientSecret) of a connected app; "
                                      f"found keys: {', '.join(sorted(creds)) or 'none'}")
        form = {"client_id": creds["clientId"]}
        if creds.get("clientSecret"):
            form["client_secret"] = creds["clientSecret"]
        if creds.get("refreshToken"):
            return "refresh token", {**form, "grant_type": "refresh_token", "refresh_token": creds["refreshToken"]}
        if creds.get("username"):
            password = creds.get("password", "") + creds.get("securityToken", "")
            return "username-password", {**form, "grant_type": "password", "username": creds["username"],
                                         "password": password}
        if not creds.get("clientSecret"):
            raise AuthenticationError("the Salesforce Secret needs clientSecret with clientId (client credentials), "
                                      "refreshToken, or username and password")
        return "client credentials", {**form, "grant_type": "client_credentials"}

    def _login(self) -> str:
        flow, form = self._grant()
        url = f"{self.login_url}/services/oauth2/token"
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.session.post(url, data=form, timeout=self.timeout)
            except requests.RequestException as error:
                if attempt == self.max_attempts:
                    raise TransientError(f"cannot reach the Salesforce login host {self.login_url}: "
                                         f"{type(error).__name__}") from None
                self._pause(attempt)
                continue
            if response.status_code in RETRIABLE_STATUS and attempt < self.max_attempts:
                self._pause(attempt)
                continue
            break
        if response.status_code in RETRIABLE_STATUS:
            raise TransientError(f"the Salesforce login host {self.login_url} kept answering {response.status_code}")
        if response.status_code != 200:
            error, description = _oauth_error(response)
            raise AuthenticationError(
                f"Salesforce refused the {flow} login for clientId {self.client_id!r} at {self.login_url}: "
                f"{error} ({description}); check the keys of the Connection's Secret")
        body = response.json()
        self._token = str(body["access_token"])
        self.instance_url = str(body.get("instance_url") or self.instance_url).rstrip("/")
        return self._token

    # ---- HTTP with retries -------------------------------------------------------------------

    def _send(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
              **kwargs: Any) -> requests.Response:
        """One logical call: retries REQUEST_LIMIT_EXCEEDED, 502/503/504 and connection errors with
        exponential backoff; logs in again once when the session expired."""
        if self._token is None:
            self._login()
        renewed = False
        where = path.split("?", 1)[0]
        for attempt in range(1, self.max_attempts + 1):
            body = kwargs.get("data")
            if hasattr(body, "seek"):
                body.seek(0)  # a file re-sent on retry starts from the beginning
            url = path if path.startswith("http") else self.instance_url + path
            try:
                self.api_calls += 1
                response = self.session.request(method, url, headers={
                    **(headers or {}), "Authorization": f"Bearer {self._token}"}, timeout=self.timeout, **kwargs)
            except requests.RequestException as error:
                if attempt == self.max_attempts or not _safe_to_retry(method, error):
                    raise TransientError(f"cannot reach Salesforce at {self.instance_url} for {method} {where}: "
                                         f"{type(error).__name__}") from None
                self._pause(attempt)
                continue
            if response.status_code == 401 and not renewed:
                response.close()
                renewed = True
                self._login()
                continue
            if response.status_code == 401:
                raise AuthenticationError(f"Salesforce rejected the session for {method} {where}: "
                                          f"{_describe(response)}")
            code = _error_code(response)
            if response.status_code in RETRIABLE_STATUS or code == "REQUEST_LIMIT_EXCEEDED":
                if attempt == self.max_attempts:
                    raise TransientError(f"Salesforce kept answering {response.status_code} {code or ''} for "
                                         f"{method} {where} after {attempt} attempts".replace("  ", " "),
                                         reason="SalesforceThrottled" if code == "REQUEST_LIMIT_EXCEEDED"
                                         else "SalesforceUnavailable")
                response.close()  # a streamed body is not read; free the connection
                self._pause(attempt)
                continue
            return response
        raise TransientError(f"Salesforce did not answer {method} {where}")

    def _pause(self, attempt: int) -> None:
        time.sleep(min(self.retry_base_delay * 2 ** (attempt - 1), 60))

    def _checked(self, response: requests.Response, what: str) -> requests.Response:
        """The response when 2xx, else the matching DicError."""
        if response.status_code < 300:
            return response
        code, message = _first_error(response)
        if code in SOQL_ERRORS and what == "SOQL":
            raise PermanentError(f"SOQL: {_soql_reason(message, code)}", reason="InvalidQuery")
        if response.status_code == 404:
            raise NotFoundError(f"{what}: Salesforce has no such resource ({code}: {message})")
        if response.status_code == 403:
            raise PermanentError(f"{what}: Salesforce denied access ({code}: {message}); check the integration "
                                 "user's permissions", reason="AccessDenied")
        if response.status_code >= 500:
            raise TransientError(f"{what}: Salesforce answered {response.status_code} ({code}: {message})")
        raise PermanentError(f"{what}: Salesforce answered {response.status_code} ({code}: {message})")

    def request_json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self._checked(self._send(method, path, **kwargs), what).json()

    def request_json_or_empty(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """Like request_json, for calls that may answer without a body (e.g. 201 Created, 204)."""
        response = self._checked(self._send(method, path, **kwargs), what)
        return response.json() if response.content else None

    # ---- probe and query ---------------------------------------------------------------------

    def probe(self) -> ProbeResult:
        self._login()
        limits = self.request_json("GET", f"{self.data_path}/limits", "limits")
        daily = limits.get("DailyApiRequests", {})
        return ProbeResult(f"Salesforce org at {self.instance_url}: API requests remaining "
                           f"{daily.get('Remaining', '?')}/{daily.get('Max', '?')}")

    def query(self, soql: str) -> Iterator[dict[str, object]]:
        """Records of a SOQL query, page by page (nextRecordsUrl), without their ``attributes``."""
        page = self.request_json("GET", f"{self.data_path}/query", "SOQL", params={"q": soql})
        while True:
            for record in page.get("records", []):
                yield _strip_attributes(record)
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self.request_json("GET", next_url, "SOQL")

    # ---- writes ------------------------------------------------------------------------------

    def write(self, object_name: str, operation: str, records: Iterable[dict[str, object]],
              external_id_field: str | None, *, bulk_threshold: int = 2000) -> WriteReport:
        """Insert, update (by Id) or upsert (by external id) records; per-record failures are reported,
        not raised. Fewer than ``bulk_threshold`` records go through sObject Collections, more through
        Bulk API 2.0. Records are read once, as a stream; at most ``bulk_threshold`` are held at once."""
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

            report = BulkIngest(self, object_name, operation, external_id_field).run(head, iterator)
        report.api_calls = self.api_calls - before
        return report

    def _write_collections(self, object_name: str, operation: str, records: list[dict[str, object]],
                           external_id_field: str | None) -> WriteReport:
        report = WriteReport()
        path = f"{self.data_path}/composite/sobjects"
        method = "POST" if operation == "insert" else "PATCH"
        if operation == "upsert":
            path += f"/{object_name}/{external_id_field}"
        for offset in range(0, len(records), COLLECTION_SIZE):
            chunk = records[offset: offset + COLLECTION_SIZE]
            body = {"allOrNone": False, "records": [
                {"attributes": {"type": object_name}, **{k: _json_value(v) for k, v in r.items()}} for r in chunk]}
            results = self.request_json(method, path, f"{operation} {object_name}", json=body)
            for index, result in enumerate(results):
                if result.get("success"):
                    report.written += 1
                else:
                    report.failed.append((offset + index, record_error(result.get("errors") or [])))
        return report


def record_error(errors: list[dict[str, Any]]) -> str:
    """'FIELD: message' for the first error of a record (or 'STATUS_CODE: message' without a field)."""
    if not errors:
        return "rejected by Salesforce without a reason"
    first = errors[0]
    return error_reason(str(first.get("statusCode", "")), str(first.get("message", "")), first.get("fields") or [])


def error_reason(code: str, message: str, fields: list[str]) -> str:
    prefix = ", ".join(fields) if fields else code
    return message if prefix and message.startswith(f"{prefix}:") else f"{prefix}: {message}"


def _strip_attributes(record: dict[str, Any]) -> dict[str, object]:
    return {k: (_strip_attributes(v) if isinstance(v, dict) else v) for k, v in record.items() if k != "attributes"}


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _safe_to_retry(method: str, error: requests.RequestException) -> bool:
    """A POST is retried only when the connection was never made (else it may have been applied)."""
    if method != "POST" or isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _errors(response: requests.Response) -> list[dict[str, Any]]:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, list):
            return [e for e in body if isinstance(e, dict)]
        if isinstance(body, dict):
            return [body]
    return []


def _error_code(response: requests.Response) -> str | None:
    if response.status_code < 400:
        return None
    errors = _errors(response)
    return str(errors[0].get("errorCode")) if errors and errors[0].get("errorCode") else None


def _first_error(response: requests.Response) -> tuple[str, str]:
    errors = _errors(response)
    if not errors:
        return f"HTTP {response.status_code}", response.text[:300].strip() or response.reason
    return str(errors[0].get("errorCode", "")), str(errors[0].get("message", "")).strip()


def _describe(response: requests.Response) -> str:
    code, message = _first_error(response)
    return f"{code}: {message}"


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
