"""A fake WalkMe API speaking the contract in docs/walkme-api.md, on 127.0.0.1.

It lives in the package because `walkme-dic demo` ships it; tests import it from tests/fakes.
Real parts (documented by WalkMe): the client-credentials token endpoint and the End User Update
API (`POST /public/v1/user/data`, at most 100 objects, acknowledgement body). Ours (no public
WalkMe API found): the paged Insights export. Every request line (path and query, as sent) is kept
in :attr:`FakeWalkMe.request_lines`, so tests can check that no secret travels in a URL.

It follows the console: an integration token set up with :meth:`FakeWalkMe.declare` has the
properties and types an admin declares in its Map Columns step (String, Number or Date), stores
only those and ignores any other property of a payload (assumption A11), and refuses a value not of
its property's declared type (A3). A token nobody declared learns each new property's type from
its first value (or :meth:`FakeWalkMe.define_properties`): a shortcut for tests that are not about
the console, not WalkMe's behaviour. It refuses only what WalkMe documents besides: more than 100
objects, more than 100 properties in the account, an unknown integration token. How it refuses
(one 400 for the whole request naming the first bad object as ``data[i]``) is our assumption,
written down in docs/walkme-api.md.

A ``null`` value clears the attribute, whatever its property's type (our assumption A8). Users'
attributes are applied synchronously (the real API is asynchronous) so tests can read them back
with :meth:`FakeWalkMe.users`. Nothing is ever deleted, as in WalkMe.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import random
import re
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

from aiohttp import web

from walkme_dic_dev.httpserver import BackgroundServer

MAX_OBJECTS = 100
MAX_PROPERTIES = 100
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TYPES = ("String", "Number", "Date")  # WalkMe's documented property types
TIME_FIELDS = {"users": "updatedAt", "events": "timestamp", "sessions": "start"}


@dataclass
class Fault:
    path: re.Pattern[str]
    remaining: int
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"message": "injected fault"}'


class SyntheticUsers(Sequence[dict[str, Any]]):
    """``count`` Insights users made up on demand, all updated at one moment.

    Benchmarks export gigabytes of users; a list of that many dicts would not fit in memory.
    """

    def __init__(self, count: int, updated_at: str = "2026-11-20T10:00:00Z") -> None:
        self.count, self.updated_at = count, updated_at

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._user(i) for i in range(*index.indices(self.count))]
        position = index + self.count if index < 0 else index
        if not 0 <= position < self.count:
            raise IndexError(index)
        return self._user(position)

    def _user(self, index: int) -> dict[str, Any]:
        return {"userId": f"user-{index}", "email": f"user{index}@acme.example", "lastSeen": self.updated_at,
                "updatedAt": self.updated_at}


class FakeWalkMe(BackgroundServer):
    """``url = fake.start()`` in a background thread; ``fake.stop()`` at the end."""

    thread_name = "fake-walkme"

    def __init__(self, clients: dict[str, str], integration_tokens: dict[str, str] | set[str]) -> None:
        super().__init__()
        self.clients = dict(clients)
        self.integration_tokens = (dict(integration_tokens) if isinstance(integration_tokens, dict)
                                   else dict.fromkeys(integration_tokens, "uuid"))
        self.access_tokens: dict[str, datetime] = {}
        self.token_lifetime = 86400
        self.scopes: dict[str, str] = {}  # client id -> the scope its token answer lists (WalkMe documents none)
        self.attributes: dict[str, dict[str, dict[str, Any]]] = {}  # integration token -> user id -> attrs
        self.property_types: dict[str, str] = {}  # property -> String | Number | Date
        self.declared: dict[str, dict[str, str]] = {}  # integration token -> its console properties and types
        self.ignored: Counter[str] = Counter()  # undeclared properties a declared token's payloads carried
        self.datasets: dict[str, Sequence[dict[str, Any]]] = {"users": [], "events": [], "sessions": []}
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.activity: list[dict[str, Any]] = []  # the account's activity log, by timestamp
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.request_lines: list[str] = []  # "METHOD path?query" of every request, the query as sent
        self.objects_received = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = 0.002
        self.keep_users = True  # False: validate and acknowledge only (benchmarks of millions of users)
        self._lock = threading.Lock()

    # ---- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/accounts/connect/token", self._token)
        app.router.add_post("/public/v1/user/data", self._user_data)
        app.router.add_get("/public/v1/activitylog", self._activity_log)
        app.router.add_get("/public/v1/insights/export/{dataset}", self._export)
        app.router.add_get("/public/v1/insights/reports/{report}/rows", self._report)
        return app

    # ---- test hooks --------------------------------------------------------------------------

    def fail_next(self, path: str, count: int, status: int, headers: dict[str, str] | None = None,
                  body: str = '{"message": "injected fault"}') -> None:
        """The next ``count`` requests whose path matches the regex ``path`` get ``status``."""
        with self._lock:
            self.faults.append(Fault(re.compile(path), count, status, headers or {}, body))

    def users(self, integration_token: str | None = None) -> dict[str, dict[str, Any]]:
        """User id -> attributes, for one integration token or merged over all."""
        with self._lock:
            if integration_token is not None:
                return {k: dict(v) for k, v in self.attributes.get(integration_token, {}).items()}
            merged: dict[str, dict[str, Any]] = {}
            for per_token in self.attributes.values():
                for user, attrs in per_token.items():
                    merged.setdefault(user, {}).update(attrs)
            return merged

    def declare(self, integration_token: str, properties: dict[str, str]) -> None:
        """The integration's properties as an admin sets them up in the console (name -> String, Number or
        Date), besides its user identifier property: only these are stored (A11), each of its type (A3)."""
        unknown = {name: kind for name, kind in properties.items() if kind not in TYPES}
        if unknown or len(properties) > MAX_PROPERTIES:
            raise ValueError(f"properties are String, Number or Date, at most {MAX_PROPERTIES}: {unknown}")
        with self._lock:
            self.declared[integration_token] = dict(properties)

    def define_properties(self, types: dict[str, str]) -> None:
        """Properties the account already has (another integration created them): name -> String, Number
        or Date. Values of another type are refused (assumption A3)."""
        with self._lock:
            self.property_types.update(types)

    def seed(self, dataset: str, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self.datasets[dataset] = sorted([*self.datasets[dataset], *records],
                                            key=lambda r: _moment(r[TIME_FIELDS[dataset]]))

    def seed_synthetic_users(self, count: int) -> None:
        """Replace the users with ``count`` generated ones (see :class:`SyntheticUsers`)."""
        with self._lock:
            self.datasets["users"] = SyntheticUsers(count)

    def seed_activity(self, events: list[dict[str, Any]]) -> None:
        """Activity log events (WalkMe's fields: eventId, timestamp as RFC 3339 with milliseconds, userEmail, …)."""
        with self._lock:
            self.activity = sorted([*self.activity, *events], key=lambda e: _moment(e["timestamp"]))

    def seed_report(self, report_id: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.reports[report_id] = list(rows)

    def seed_demo_data(self, users: int, now: datetime | None = None, seed: int = 7) -> None:
        """Realistic-looking Insights users, sessions and events over the last week."""
        rng = random.Random(seed)
        now = now or datetime.now(UTC).replace(microsecond=0)
        departments = ["Finance", "Sales", "Engineering", "Support", "HR"]
        user_records, sessions, events = [], [], []
        for index in range(users):
            user_id = f"wm-{1000 + index}"
            first = now - timedelta(days=rng.randint(10, 400))
            last = now - timedelta(hours=rng.randint(1, 160))
            user_records.append({"userId": user_id, "email": f"user{index}@acme.example",
                                 "firstSeen": _iso(first), "lastSeen": _iso(last), "updatedAt": _iso(last),
                                 "attributes": {"department": rng.choice(departments)}})
            for number in range(rng.randint(1, 3)):
                start = last - timedelta(hours=number * 5)
                duration = rng.randint(60, 3600)
                session_id = f"s-{index}-{number}"
                sessions.append({"sessionId": session_id, "userId": user_id, "start": _iso(start),
                                 "end": _iso(start + timedelta(seconds=duration)), "durationSeconds": duration})
                events.append({"eventId": f"e-{index}-{number}", "userId": user_id, "sessionId": session_id,
                               "type": rng.choice(["SmartWalkThruStarted", "LauncherClicked", "SurveySubmitted"]),
                               "timestamp": _iso(start + timedelta(seconds=duration // 2))})
        self.seed("users", user_records)
        self.seed("sessions", sessions)
        self.seed("events", events)

    # ---- handlers ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.requests[request.path] += 1
            self.request_lines.append(f"{request.method} {request.raw_path}")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = next((f for f in self.faults if f.remaining > 0 and f.path.search(request.path)), None)
            if fault is not None:
                fault.remaining -= 1
        try:
            if fault is not None:
                await asyncio.sleep(0.01)
                return web.Response(status=fault.status, text=fault.body, headers=fault.headers,
                                    content_type="application/json")
            await asyncio.sleep(self.latency)  # a little latency, so that concurrency shows
            return await handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _token(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        form = await request.post()
        try:
            client_id, client_secret = base64.b64decode(header.removeprefix("Basic ")).decode().split(":", 1)
        except ValueError:
            client_id = client_secret = ""
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if not client_id or self.clients.get(client_id) != client_secret:
            return _error(401, "invalid_client", "Client authentication failed")
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[token] = datetime.now(UTC) + timedelta(seconds=self.token_lifetime)
        answer = {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}
        if client_id in self.scopes:
            answer["scope"] = self.scopes[client_id]
        return web.json_response(answer)

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expires = self.access_tokens.get(token)
        return expires is not None and expires > datetime.now(UTC)

    async def _user_data(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "missing or expired bearer token")
        body = await request.json()
        token, data = body.get("token"), body.get("data")
        if token not in self.integration_tokens:
            return _error(403, "forbidden", "unknown integration token")
        if not isinstance(data, list) or not data:
            return _error(400, "bad_request", "data must be a non-empty array")
        if len(data) > MAX_OBJECTS:
            return _error(400, "bad_request", f"at most {MAX_OBJECTS} objects per request (got {len(data)})")
        id_property = self.integration_tokens[token]
        with self._lock:
            declared = self.declared.get(token)
            types = dict(self.property_types) if declared is None else declared
            for index, item in enumerate(data):
                problem = _invalid(item, id_property, types, learn=declared is None)
                if problem:
                    return _error(400, "bad_request", f"data[{index}]: {problem}")
            if len(types) > MAX_PROPERTIES:
                return _error(400, "bad_request", f"an account can have at most {MAX_PROPERTIES} properties "
                                                  f"(this request would make it {len(types)})")
            if declared is None:
                self.property_types = types
            if self.keep_users:
                store = self.attributes.setdefault(token, {})
                for item in data:
                    attributes = store.setdefault(str(item[id_property]), {})
                    for key, value in item.items():
                        if declared is not None and key != id_property and key not in declared:
                            self.ignored[key] += 1  # not set up in the console: dropped, unsaid (A11)
                        elif value is None:  # null clears the attribute (docs/walkme-api.md, A8)
                            attributes.pop(key, None)
                        elif key != id_property:
                            attributes[key] = value
            self.objects_received += len(data)
        return web.json_response({"message": "Request has been received"})

    async def _activity_log(self, request: web.Request) -> web.Response:
        """WalkMe's documented activity log: events with from <= timestamp < to (Unix ms; defaults: the last
        hour, now), ``limit`` (default 1000) from ``offset``; which bound includes is our assumption (A12)."""
        if not self._authorized(request):
            return _error(401, "unauthorized", "missing or expired bearer token")
        now = datetime.now(UTC)
        try:
            start = int(request.query.get("from", (now - timedelta(hours=1)).timestamp() * 1000))
            end = int(request.query.get("to", now.timestamp() * 1000))
            limit, offset = int(request.query.get("limit", 1000)), int(request.query.get("offset", 0))
        except ValueError:
            return _error(400, "bad_request", "from, to, limit and offset are numbers")
        with self._lock:
            events = [e for e in self.activity if start <= _moment(e["timestamp"]).timestamp() * 1000 < end]
        return web.json_response({"events": events[offset:offset + limit]})

    async def _export(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "missing or expired bearer token")
        dataset = request.match_info["dataset"]
        if dataset not in self.datasets:
            return _error(404, "not_found", f"unknown dataset {dataset!r}")
        since, until = request.query.get("since"), request.query.get("until")
        started = _iso(datetime.now(UTC))
        field = TIME_FIELDS[dataset]
        try:
            bounds = [None if bound is None else _moment(bound) for bound in (since, until)]
        except ValueError:
            return _error(400, "bad_request", "since and until are RFC 3339 times")
        with self._lock:  # kept sorted by time: since (included) and until (not) are bisections, not a scan
            records = self.datasets[dataset]
            def stamped(record: dict[str, Any]) -> datetime:
                return _moment(record[field])

            first = bisect.bisect_left(records, bounds[0], key=stamped) if bounds[0] else 0
            end = bisect.bisect_left(records, bounds[1], key=stamped) if bounds[1] else len(records)
            page = _page(records, request, limit_default=1000, start=first, stop=end)
            page["watermark"] = records[end - 1][field] if end > first else (since or started)
        return web.json_response(page)

    async def _report(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "missing or expired bearer token")
        rows = self.reports.get(request.match_info["report"])
        if rows is None:
            return _error(404, "not_found", "unknown report")
        page = _page(rows, request, limit_default=1000)
        page["watermark"] = _iso(datetime.now(UTC))
        return web.json_response(page)


def main(argv: list[str] | None = None) -> None:
    """`python -m walkme_dic_dev.fake_walkme --port P --client ID:SECRET --token TOKEN:PROPERTY`:
    the fake in a process of its own (benchmarks, so that the fake is not measured with the client)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client", action="append", default=[], help="clientId:clientSecret (repeatable)")
    parser.add_argument("--token", action="append", default=[], help="integrationToken:userIdProperty")
    parser.add_argument("--latency", type=float, default=0.002, help="Seconds added to every answer.")
    parser.add_argument("--forget-users", action="store_true", help="Validate and acknowledge, keep no users.")
    parser.add_argument("--synthetic-users", type=int, default=0, help="Insights users to export (generated).")
    args = parser.parse_args(argv)
    fake = FakeWalkMe(dict(c.split(":", 1) for c in args.client), dict(t.split(":", 1) for t in args.token))
    fake.latency, fake.keep_users = args.latency, not args.forget_users
    if args.synthetic_users:
        fake.seed_synthetic_users(args.synthetic_users)

    async def serve() -> None:
        print(await fake.start_async(args.port), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _page(items: Sequence[Any], request: web.Request, limit_default: int, start: int = 0,
          stop: int | None = None) -> dict[str, Any]:
    """The page of ``items[start:stop]`` the request's cursor and limit name."""
    stop = len(items) if stop is None else stop
    offset = int(base64.urlsafe_b64decode(request.query["cursor"]).decode()) if request.query.get("cursor") else start
    limit = min(int(request.query.get("limit", limit_default)), 10000)
    chunk = items[offset: min(offset + limit, stop)]
    after = offset + len(chunk)
    cursor = base64.urlsafe_b64encode(str(after).encode()).decode() if after < stop else None
    return {"data": chunk, "nextCursor": cursor}


def value_type(value: Any) -> str | None:
    """WalkMe's type of a JSON value: String, Number, Date (a YYYY-MM-DD string); None for any other (a JSON
    boolean, object or array: WalkMe documents no such type, assumption A4)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        if DATE.match(value):
            try:
                date.fromisoformat(value)
            except ValueError:
                return "String"
            return "Date"
        return "String"
    return None


def _invalid(item: Any, id_property: str, types: dict[str, str], *, learn: bool = True) -> str | None:
    """Why one object is refused, learning the types of new properties into ``types`` (``learn``; else a property
    not in ``types`` is ignored: A11); None when it is fine."""
    if not isinstance(item, dict):
        return "each object must be a JSON object"
    if item.get(id_property) in (None, ""):
        return f"missing the user identifier property {id_property!r}"
    for key, value in item.items():
        if key == id_property or value is None:  # null clears, whatever the property's type (A8)
            continue
        if not learn and key not in types:
            continue
        kind = value_type(value)
        if kind is None:
            return f"attribute {key!r} must be a String, Number or Date (YYYY-MM-DD), not {type(value).__name__}"
        declared = types.setdefault(key, kind)
        if kind != declared and not (declared == "String" and kind == "Date"):
            return f"attribute {key!r} is a {declared} property; {value!r} is not a {declared}"
    return None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    main()
