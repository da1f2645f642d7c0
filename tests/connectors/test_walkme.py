"""WalkMeClient against the fake WalkMe API on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from tests.fakes.tcpproxy import TcpCutProxy
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from walkme_dic.api.connection import WalkMeProvider
from walkme_dic.connectors.records import BATCH, PREFETCH_PAGES, WriteReport
from walkme_dic.connectors.walkme import WalkMeClient
from walkme_dic.errors import AuthenticationError, PermanentError, TransientError
from walkme_dic_dev.httpserver import BackgroundServer


def client(fake: FakeWalkMe, secret: str = WALKME_SECRET, **options: object) -> WalkMeClient:
    spec = WalkMeProvider.model_validate({"apiUrl": fake.url, "insightsExportUrl": fake.url,
                                          "auth": {"secretRef": {"name": "x"}}})
    return WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": secret}, retry_base_delay=0.01,
                        **options)  # type: ignore[arg-type]


def upsert(walkme: WalkMeClient, token: str, records: Iterable[Mapping[str, object]]) -> WriteReport:
    """Records sent as the engine sends its spool: encoded, in batches of 100, numbered from 0."""
    encoded = ((index, orjson.dumps(record)) for index, record in enumerate(records))
    return walkme.upsert_batches(token, iter(lambda: list(islice(encoded, BATCH)), []))


def test_probe_gets_a_token(walkme: FakeWalkMe) -> None:
    assert WALKME_CLIENT in client(walkme).probe().message


def test_bad_key_is_an_authentication_error_without_the_secret(walkme: FakeWalkMe) -> None:
    with pytest.raises(AuthenticationError) as error:
        client(walkme, secret="wrong-secret-value").probe()
    assert "wrong-secret-value" not in str(error.value) and WALKME_CLIENT in str(error.value)


def test_records_go_in_batches_of_100(walkme: FakeWalkMe) -> None:
    report = upsert(client(walkme), WALKME_TOKEN, ({"uuid": f"u{i}", "plan": "gold"} for i in range(250)))
    assert report.written == 250 and report.failed == []
    assert walkme.requests["/public/v1/user/data"] == 3
    assert len(walkme.users(WALKME_TOKEN)) == 250


def test_inbound_never_deletes_and_active_flips(walkme: FakeWalkMe) -> None:
    wm = client(walkme)
    upsert(wm, WALKME_TOKEN, [{"uuid": u, "active": "true"} for u in ("a", "b", "c")])
    upsert(wm, WALKME_TOKEN, [{"uuid": "a", "active": "true"}, {"uuid": "b", "active": "false"}])
    users = walkme.users(WALKME_TOKEN)
    assert set(users) == {"a", "b", "c"} and users["b"]["active"] == "false"


def test_429_with_retry_after_is_retried(walkme: FakeWalkMe) -> None:
    walkme.fail_next("/user/data$", 2, 429, headers={"Retry-After": "0"})
    report = upsert(client(walkme), WALKME_TOKEN, [{"uuid": "a"}])
    assert report.written == 1 and walkme.requests["/public/v1/user/data"] == 3


def test_persistent_500_is_transient(walkme: FakeWalkMe) -> None:
    walkme.fail_next("/user/data$", 100, 500)
    with pytest.raises(TransientError, match="500"):
        upsert(client(walkme, max_attempts=3), WALKME_TOKEN, [{"uuid": "a"}])


def test_refused_batch_is_narrowed_to_the_refused_records(walkme: FakeWalkMe) -> None:
    records = [{"uuid": f"u{i}", "start": "2024-01-01"} for i in range(150)]
    records[120]["start"] = "2024-1-5"
    report = upsert(client(walkme, max_concurrency=1), WALKME_TOKEN, records)
    assert report.written == 149
    assert [index for index, _ in report.failed] == [120]
    assert "'start' is a Date property; '2024-1-5' is not a Date" in report.failed[0][1]
    assert "data[" not in report.failed[0][1], "the reason is the record's own, not a position in a batch"
    assert set(walkme.users(WALKME_TOKEN)) == {f"u{i}" for i in range(150)} - {"u120"}


@pytest.mark.parametrize("bad", [[0], [99], [0, 99], [13, 14, 15], list(range(100))])
def test_narrowing_finds_every_refused_record_wherever_it_is(walkme: FakeWalkMe, bad: list[int]) -> None:
    walkme.define_properties({"seats": "Number"})
    records: list[dict[str, object]] = [{"uuid": f"u{i}", "seats": "many" if i in bad else i} for i in range(100)]
    report = upsert(client(walkme), WALKME_TOKEN, records)
    assert [index for index, _ in report.failed] == bad
    assert report.written == 100 - len(bad)
    assert len(walkme.users(WALKME_TOKEN)) == 100 - len(bad)


@pytest.mark.parametrize(("bad", "requests"), [([49], 3), ([0], 2), ([99], 2), ([13, 14, 15], 5),
                                               (list(range(100)), 100)])
def test_the_object_an_answer_names_costs_one_request(walkme: FakeWalkMe, bad: list[int], requests: int) -> None:
    """WalkMe's answer names the refused object (data[i]): the objects before it are sent as one batch, the
    ones after it as another; no halving down to single objects (that cost 2n - 1 requests for n refused)."""
    walkme.define_properties({"seats": "Number"})
    records: list[dict[str, object]] = [{"uuid": f"u{i}", "seats": "many" if i in bad else i} for i in range(100)]
    report = upsert(client(walkme, max_concurrency=1), WALKME_TOKEN, records)
    assert [index for index, _ in report.failed] == bad and report.written == 100 - len(bad)
    assert all(reason == "WalkMe refused it: attribute 'seats' is a Number property; 'many' is not a Number"
               for _, reason in report.failed)
    assert walkme.requests["/public/v1/user/data"] == requests


def test_an_answer_naming_no_object_is_narrowed_by_halves(walkme: FakeWalkMe) -> None:
    """A refusal that does not say which object (here once, for the whole first batch): halves are sent."""
    walkme.fail_next("/user/data$", 1, 400, body='{"message": "request refused"}')
    report = upsert(client(walkme, max_concurrency=1), WALKME_TOKEN, [{"uuid": f"u{i}"} for i in range(100)])
    assert report.written == 100 and report.failed == []
    assert walkme.requests["/public/v1/user/data"] == 3


def test_more_than_100_properties_is_refused(walkme: FakeWalkMe) -> None:
    walkme.define_properties({f"p{i}": "String" for i in range(100)})
    report = upsert(client(walkme), WALKME_TOKEN, [{"uuid": "a", "p1": "x"}, {"uuid": "b", "new": "x"}])
    assert report.written == 1 and [index for index, _ in report.failed] == [1]
    assert "at most 100 properties" in report.failed[0][1]


def test_unknown_integration_token_fails_the_send(walkme: FakeWalkMe) -> None:
    with pytest.raises(AuthenticationError, match="integration token"):
        upsert(client(walkme), "not-a-token", [{"uuid": "a"}])


def test_concurrency_is_bounded(walkme: FakeWalkMe) -> None:
    upsert(client(walkme, max_concurrency=4), WALKME_TOKEN, ({"uuid": f"u{i}"} for i in range(3000)))
    assert 1 < walkme.max_in_flight <= 4


def test_export_pages_with_watermark_and_since(walkme: FakeWalkMe) -> None:
    walkme.seed("users", [{"userId": f"u{i}", "updatedAt": f"2026-11-{10 + i:02d}T00:00:00Z"} for i in range(5)])
    export = client(walkme).export("users", since=None, page_size=2)
    assert [r["userId"] for r in export] == ["u0", "u1", "u2", "u3", "u4"]
    assert export.watermark == "2026-11-14T00:00:00Z"
    later = client(walkme).export("users", since="2026-11-12T00:00:00Z", page_size=2)
    assert [r["userId"] for r in later] == ["u2", "u3", "u4"], "since includes its bound"


def test_insights_exports_go_only_to_the_insights_export_url_and_are_off_without_one(walkme: FakeWalkMe) -> None:
    """Issue 24: WalkMe publishes no Insights export API. Without insightsExportUrl the client refuses to call
    one; with it, the pages come from that origin (here a relay to the fake on a port of its own) while the
    token still comes from apiUrl."""
    walkme.seed("users", [{"userId": "u1", "updatedAt": "2026-11-10T00:00:00Z"}])
    plain = WalkMeProvider.model_validate({"apiUrl": walkme.url, "auth": {"secretRef": {"name": "x"}}})
    off = WalkMeClient(plain, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET})
    with pytest.raises(PermanentError) as refused:
        off.export("users", since=None)
    assert refused.value.reason == "InsightsExportNotConfigured"
    assert "set spec.walkme.insightsExportUrl" in refused.value.message and off.api_calls == 0
    relay = TcpCutProxy("127.0.0.1", int(walkme.url.rsplit(":", 1)[1])).start()
    try:
        spec = WalkMeProvider.model_validate({"apiUrl": walkme.url, "insightsExportUrl": f"http://127.0.0.1:{relay.port}",
                                              "auth": {"secretRef": {"name": "x"}}})
        wm = WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET})
        wm.probe()
        assert relay.connections == 0, "the token comes from apiUrl"
        assert [r["userId"] for r in wm.export("users", since=None)] == ["u1"]
        assert relay.connections == 1
    finally:
        relay.stop()


def test_an_incremental_export_reads_a_window_that_ends_a_lookback_before_now(walkme: FakeWalkMe) -> None:
    """[since, until): until is lookback seconds before now and is the watermark, whatever the newest record."""
    walkme.seed("users", [{"userId": f"u{i}", "updatedAt": f"2026-11-10T00:00:0{i}Z"} for i in range(5)])
    now = datetime(2026, 11, 10, 0, 5, 3, 500000, tzinfo=UTC)
    export = client(walkme).export("users", since="2026-11-10T00:00:01Z", incremental=True, lookback=300,
                                   now=now, page_size=1)
    assert [r["userId"] for r in export] == ["u1", "u2", "u3"]
    assert export.watermark == "2026-11-10T00:00:03.500Z"
    behind = client(walkme).export("users", since="2026-11-10T00:00:04Z", incremental=True, lookback=300, now=now)
    assert (list(behind), behind.watermark) == ([], "2026-11-10T00:00:04.000Z"), "never before since"


EXPORT_PATH = "/public/v1/insights/export/users"


def seed_users(walkme: FakeWalkMe, count: int) -> list[str]:
    ids = [f"u{i:03d}" for i in range(count)]
    walkme.seed("users", [{"userId": user, "updatedAt": f"2026-11-10T00:{i // 60:02d}:{i % 60:02d}Z"}
                          for i, user in enumerate(ids)])
    return ids


@pytest.mark.parametrize("pages", [1, PREFETCH_PAGES - 1, PREFETCH_PAGES, PREFETCH_PAGES + 1, 4 * PREFETCH_PAGES + 1])
def test_prefetched_export_pages_come_in_order(walkme: FakeWalkMe, pages: int) -> None:
    ids = seed_users(walkme, 3 * pages - 1)  # the last page one short
    export = client(walkme).export("users", since=None, page_size=3)
    assert [r["userId"] for r in export] == ids
    assert export.watermark == f"2026-11-10T00:00:{len(ids) - 1:02d}Z"
    assert walkme.requests[EXPORT_PATH] == pages


def test_an_export_stopped_early_fetches_no_more_than_the_pages_ahead(walkme: FakeWalkMe) -> None:
    seed_users(walkme, 40)
    records = iter(client(walkme).export("users", since=None, page_size=2))
    assert next(records)["userId"] == "u000"
    records.close()  # type: ignore[attr-defined]
    assert 1 <= walkme.requests[EXPORT_PATH] <= 1 + PREFETCH_PAGES
    assert not [t for t in threading.enumerate() if t.name.startswith("walkme-export")], "no fetching goes on"


def test_pages_fetch_ahead_from_the_start_and_stop_when_closed_unread(walkme: FakeWalkMe) -> None:
    """The engine makes the pages first and sets up its destination meanwhile; when that fails the pages are
    closed without being read: no more than the pages ahead were fetched and no fetching thread is left."""
    seed_users(walkme, 40)
    with client(walkme).export("users", since=None, page_size=2).pages():
        deadline = time.monotonic() + 10
        while walkme.requests[EXPORT_PATH] < PREFETCH_PAGES and time.monotonic() < deadline:
            time.sleep(0.01)
        assert walkme.requests[EXPORT_PATH] == PREFETCH_PAGES, "fetched before anything was read"
    assert walkme.requests[EXPORT_PATH] == PREFETCH_PAGES
    assert not [t for t in threading.enumerate() if t.name.startswith("walkme-export")], "no fetching goes on"


def test_a_page_failing_while_others_are_ahead_fails_the_export_after_the_pages_before_it(walkme: FakeWalkMe) -> None:
    ids = seed_users(walkme, 40)
    received = []
    export = iter(client(walkme).export("users", since=None, page_size=4))
    received.append(next(export)["userId"])
    walkme.fail_next("/insights/export/", 1, 404)  # whichever page is fetched next
    with pytest.raises(PermanentError, match=r"The Insights export endpoint has no http://127\.0\.0\.1:\d+/public/v1/insights/export/users"):
        received.extend(record["userId"] for record in export)
    assert received == ids[:len(received)] and len(received) % 4 == 0 and 4 <= len(received) <= 4 * PREFETCH_PAGES


def test_unreachable_api_is_transient_and_names_the_url() -> None:
    from tests.fixtures.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    spec = WalkMeProvider.model_validate({"apiUrl": url, "insightsExportUrl": url,
                                          "auth": {"secretRef": {"name": "x"}}})
    unreachable = WalkMeClient(spec, {"clientId": "c", "clientSecret": "s"}, retry_base_delay=0.01, max_attempts=2)
    with pytest.raises(TransientError, match=f"cannot reach WalkMe at {url}"):
        unreachable.probe()


def test_proxy_from_the_environment_unless_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib3

    from walkme_dic.connectors.common import http_pool

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = http_pool("https://api.walkme.com", 4)
    assert isinstance(proxied, urllib3.ProxyManager) and proxied.proxy is not None
    assert proxied.proxy.host == "proxy.corp.example"
    monkeypatch.setenv("NO_PROXY", ".walkme.com")
    assert not isinstance(http_pool("https://api.walkme.com", 4), urllib3.ProxyManager)


class HtmlSite(BackgroundServer):
    """A web server that answers every request 200 with an HTML page (a console, a proxy's login page, a wrong
    apiUrl); ``echo`` goes into the page."""

    thread_name = "html-site"

    def __init__(self, echo: str = "") -> None:
        super().__init__()
        self.echo = echo

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text=f"<!DOCTYPE html>\n<html><head><title>Sign in {self.echo}</title></head>"
                                     f"<body>{'x' * 200}</body></html>", content_type="text/html")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", page)
        return app


@pytest.fixture
def html_site() -> Iterator[HtmlSite]:
    site = HtmlSite(echo=WALKME_SECRET)
    site.start()
    yield site
    site.stop()


def html_client(site: HtmlSite) -> WalkMeClient:
    spec = WalkMeProvider.model_validate({"apiUrl": site.url, "insightsExportUrl": site.url,
                                          "auth": {"secretRef": {"name": "x"}}})
    return WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}, max_attempts=1)


def test_an_api_url_answering_html_names_the_url_and_what_came_back(html_site: HtmlSite) -> None:
    with pytest.raises(PermanentError) as error:
        html_client(html_site).probe()
    message = error.value.message
    assert error.value.reason == "UnexpectedAnswer"
    assert f"POST {html_site.url}/accounts/connect/token answered HTTP 200 with Content-Type text/html" in message
    assert "'<!DOCTYPE html> <html><head><title>Sign in ***</title>" in message and " …" in message
    assert "check spec.walkme.apiUrl" in message
    assert "JSONDecodeError" not in message and "Expecting value" not in message
    assert WALKME_SECRET not in message, "what the page echoes is masked"
    assert len(message) < 500


def test_an_export_page_or_an_acknowledgement_that_is_not_json_names_the_url(walkme: FakeWalkMe) -> None:
    wm = client(walkme, max_attempts=1)
    walkme.fail_next("/insights/export/users$", 1, 200, body="<html>maintenance</html>")
    with pytest.raises(PermanentError, match=r"GET http://127\.0\.0\.1:\d+/public/v1/insights/export/users answered "
                                             r"HTTP 200 with Content-Type application/json; charset=utf-8, not the "
                                             r"JSON .*'<html>maint"):
        list(wm.export("users", since=None))
    walkme.fail_next("/user/data$", 1, 200, body="<html>ok</html>")
    with pytest.raises(PermanentError, match="/public/v1/user/data answered HTTP 200"):
        upsert(wm, WALKME_TOKEN, [{"uuid": "a"}])


def test_an_error_answer_that_is_not_json_says_what_came_back(walkme: FakeWalkMe) -> None:
    walkme.fail_next("/user/data$", 1, 502, body="<html><body>Bad gateway</body></html>")
    with pytest.raises(TransientError, match="502"):
        upsert(client(walkme, max_attempts=1), WALKME_TOKEN, [{"uuid": "a"}])
    walkme.fail_next("/user/data$", 1, 418, body="<html><body>teapot</body></html>")
    with pytest.raises(PermanentError,
                       match=r"418: not JSON \(Content-Type application/json; charset=utf-8\): '<html><body>teapot"):
        upsert(client(walkme, max_attempts=1), WALKME_TOKEN, [{"uuid": "a"}])


@pytest.mark.parametrize(("max_in_flight", "expected"), [(None, 4), (1, 1), (2, 2), (16, 16)])
def test_requests_in_flight_follow_the_connections_max_in_flight(walkme: FakeWalkMe, max_in_flight: int | None,
                                                                  expected: int) -> None:
    block = {"apiUrl": walkme.url, "insightsExportUrl": walkme.url, "auth": {"secretRef": {"name": "x"}}}
    spec = WalkMeProvider.model_validate({**block, **({"maxInFlight": max_in_flight} if max_in_flight else {})})
    wm = WalkMeClient(spec, {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET})
    assert wm.max_concurrency == expected
    walkme.latency = 0.02
    try:
        upsert(wm, WALKME_TOKEN, ({"uuid": f"u{i}"} for i in range(100 * 3 * expected)))
    finally:
        walkme.latency = 0.002
    assert walkme.max_in_flight <= expected and (expected == 1 or walkme.max_in_flight > 1)


@pytest.mark.parametrize("value", [0, 17, -1])
def test_max_in_flight_is_bounded(value: int) -> None:
    with pytest.raises(ValidationError, match="maxInFlight"):
        WalkMeProvider.model_validate({"auth": {"secretRef": {"name": "x"}}, "maxInFlight": value})


def test_the_probe_checks_the_scope_when_the_token_answer_lists_one(walkme: FakeWalkMe) -> None:
    """WalkMe documents no scope in the token answer: without one the probe says it cannot tell."""
    assert "lists no scopes" in client(walkme).probe().message
    walkme.scopes[WALKME_CLIENT] = "reports:read endUserUpdate:write"
    assert client(walkme).probe().message.endswith("with the scope endUserUpdate:write")
    walkme.scopes[WALKME_CLIENT] = "reports:read"
    with pytest.raises(PermanentError, match="scopes reports:read: the End User Update API needs endUserUpdate:write"
                       ) as error:
        client(walkme).probe()
    assert error.value.reason == "MissingScope" and "account manager" in error.value.message


def test_a_refused_upsert_names_both_the_integration_token_and_the_keys_scope(walkme: FakeWalkMe) -> None:
    with pytest.raises(AuthenticationError, match="HTTP 403: unknown integration token") as error:
        upsert(client(walkme), "not-a-token", [{"uuid": "a"}])
    assert "scope endUserUpdate:write" in error.value.message and "integration token Secret" in error.value.message
