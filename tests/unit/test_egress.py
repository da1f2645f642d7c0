"""The admin's egress rules (walkme_dic.egress): URLs and hosts a tenant writes, and the connect-time guard
on real sockets after real name resolution."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.connectors.test_unreachable import NAMES_ONLY
from tests.fixtures.listeners import Listener
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.run import EXIT_PERMANENT, REQUEST_ENV
from walkme_dic.egress import (
    DENIED_HOSTS,
    POLICY_ENV,
    REFUSED_NETWORKS,
    EgressPolicy,
    EgressRefused,
    enforced,
    spec_problem,
)
from walkme_dic_dev.egress import LOOPBACK, LOOPBACK_JSON

DEFAULT = EgressPolicy()


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    yield opened
    opened.close()


# -- on the spec ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_as_a_url_gets_an_answer_and_never_an_exception(text: str) -> None:
    for url in (text, f"https://{text}", f"http://{text}/x"):
        problem = DEFAULT.url_problem(url)
        assert problem is None or isinstance(problem, str)


HOSTNAME = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,12}){1,3}", fullmatch=True).filter(
    lambda host: not host.endswith(("-", ".internal", ".localhost", ".svc", ".cluster.local")) and "-." not in host)


@settings(max_examples=150, deadline=None)
@given(host=HOSTNAME, user=st.text(min_size=1, max_size=10), password=st.none() | st.text(max_size=10))
def test_a_url_with_a_user_name_or_password_is_refused(host: str, user: str, password: str | None) -> None:
    userinfo = user if password is None else f"{user}:{password}"
    problem = DEFAULT.url_problem(f"https://{userinfo}@{host}/path")
    assert problem is not None


@settings(max_examples=150, deadline=None)
@given(host=HOSTNAME, path=st.from_regex(r"(/[A-Za-z0-9._~-]{0,10}){0,3}", fullmatch=True))
def test_https_to_a_public_name_is_allowed_and_plain_http_only_where_listed(host: str, path: str) -> None:
    assert DEFAULT.url_problem(f"https://{host}{path}") is None
    assert "plain http" in (DEFAULT.url_problem(f"http://{host}{path}") or "")
    assert EgressPolicy(plain_http_hosts=(host,)).url_problem(f"http://{host.upper()}.{path}") is None


@pytest.mark.parametrize("url", [
    "https://api.walkme.com\n", "https://api.walkme.com/ x", "https://api.walkme.com\t", "https://\x00evil",
    "https://admin:PASSWORD@api.walkme.com", "ftp://files.example.com", "https:///nohost", "file:///etc/passwd",
    "https://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/", "https://metadata.google.internal/",
    "https://kubernetes.default.svc", "https://kubernetes.default.svc.cluster.local:443", "https://kubernetes",
    "https://0x7f000001/", "https://2130706433/", "https://0177.0.0.1/", "https://127.1/", "https://[::1]:8443",
    "https://[::ffff:127.0.0.1]/", "https://localhost:8443", "https://LOCALHOST.", "https://0.0.0.0:80",
    "https://100.100.100.200/", "https://payroll.team-b.svc/", "https://db.us-east-1.internal/",
])
def test_the_issues_addresses_are_refused_by_default(url: str) -> None:
    assert DEFAULT.url_problem(url) is not None, url


def test_numeric_hosts_the_resolver_reads_as_loopback_are_refused_before_any_resolution() -> None:
    for form in ("0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1"):
        resolved = {info[4][0] for info in socket.getaddrinfo(form, 80, type=socket.SOCK_STREAM)}
        assert resolved == {"127.0.0.1"}, f"{form} no longer means loopback to this resolver: {resolved}"
        assert "canonical" in (DEFAULT.host_problem(form) or ""), form


@st.composite
def refused_address(draw: st.DrawFn) -> str:
    network = draw(st.sampled_from(REFUSED_NETWORKS))
    offset = draw(st.integers(0, network.num_addresses - 1))
    address = network.network_address + offset
    if isinstance(address, ipaddress.IPv4Address) and draw(st.booleans()):
        return f"::ffff:{address}"  # the same address, IPv4-mapped
    return str(address)


@settings(max_examples=300, deadline=None)
@given(refused_address())
def test_every_address_of_the_refused_ranges_is_refused_unless_the_admin_opens_it(address: str) -> None:
    assert DEFAULT.address_problem(address) is not None
    assert DEFAULT.host_problem(f"[{address}]") is not None
    assert EgressPolicy(allowed_cidrs=("0.0.0.0/0", "::/0")).address_problem(address) is None


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses().filter(lambda ip: _public(ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip)))
def test_public_addresses_are_allowed_unless_the_admin_denies_their_range(ip: ipaddress.IPv4Address) -> None:
    assert DEFAULT.address_problem(str(ip)) is None
    denied = EgressPolicy(denied_cidrs=(str(ipaddress.ip_network(f"{ip}/{ip.max_prefixlen - 8}", strict=False)),))
    assert denied.address_problem(str(ip)) is not None


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def test_denied_names_and_what_the_admin_allows_back() -> None:
    for name in DENIED_HOSTS:
        example = name.replace("*", "svc-a")
        assert DEFAULT.host_problem(example) is not None, example
        assert DEFAULT.host_problem(example.upper() + ".") is not None, "case and a trailing dot change nothing"
    allowed = EgressPolicy(allowed_hosts=("walkme-proxy.egress.svc",))
    assert allowed.host_problem("walkme-proxy.egress.svc") is None
    assert allowed.host_problem("other.egress.svc") is not None


@pytest.mark.parametrize(("spec", "shown"), [  # admitted by the CRDs: only the admin's rules know these hosts
    ({"walkme": {"apiUrl": "http://127.0.0.1:47001", "auth": {"secretRef": {"name": "payroll-app"}}}},
     "http://127.0.0.1:47001"),
    ({"walkme": {"apiUrl": "https://api.walkme.com", "insightsExportUrl": "http://169.254.169.254/latest",
                 "auth": {"secretRef": {"name": "walkme-api"}}}}, "169.254.169.254"),  # it is sent the token
    ({"gcs": {"bucket": "bkt", "endpointUrl": "https://metadata.google.internal"}}, "metadata.google.internal"),
    ({"s3": {"bucket": "bkt", "region": "us-east-1", "endpointUrl": "https://169.254.169.254"}}, "169.254.169.254"),
    ({"sftp": {"host": "10.0.0.1.nip.io.svc", "username": "u", "auth": {"secretRef": {"name": "s"}}}},
     "sftp.host"),
    ({"salesforce": {"instanceUrl": "https://acme.my.salesforce.com", "loginUrl": "https://0x7f000001",
                     "auth": {"secretRef": {"name": "sf"}}}}, "0x7f000001"),
])
def test_spec_problems_name_the_field_value(spec: dict, shown: str) -> None:
    problem = spec_problem(ConnectionSpec.model_validate(spec), DEFAULT)
    assert problem is not None and shown in problem


def test_what_the_loopback_rules_of_the_tests_open_is_this_machine_only() -> None:
    assert LOOPBACK.url_problem("http://127.0.0.1:9000/bucket") is None
    assert LOOPBACK.url_problem("https://169.254.169.254/") is not None
    assert LOOPBACK.url_problem("https://kubernetes.default.svc") is not None
    assert LOOPBACK.address_problem("10.0.0.1") is None and LOOPBACK.address_problem("169.254.169.254")


# -- at connect time, after resolution -----------------------------------------------------------------

def test_the_guard_refuses_a_connection_after_resolution_and_nothing_reaches_the_listener(
    listener: Listener,
) -> None:
    names_ok = NAMES_ONLY  # the name and plain http to it allowed; loopback stays refused
    assert names_ok.url_problem(f"http://localhost:{listener.port}/") is None, "the spec check lets the name through"
    with enforced(names_ok), pytest.raises(EgressRefused, match="resolves only to addresses"):
        socket.create_connection(("localhost", listener.port), timeout=5)
    with enforced(DEFAULT), pytest.raises(EgressRefused, match=r"'127\.0\.0\.1' resolves only"):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    assert listener.connections == 0
    with enforced(LOOPBACK):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
    assert _eventually(lambda: listener.connections == 1)


def test_the_guard_holds_only_the_thread_that_enforces_it(listener: Listener) -> None:
    outside: list[BaseException | None] = []
    inside = threading.Event()
    release = threading.Event()

    def other_thread() -> None:
        inside.wait(5)
        try:
            socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
            outside.append(None)
        except OSError as error:
            outside.append(error)
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with enforced(DEFAULT):
        inside.set()
        release.wait(5)
        with pytest.raises(EgressRefused):
            socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    thread.join()
    assert outside == [None], "the operator's own connections (the API server) are never held to tenant rules"
    socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()  # and the block ended it here


SYNC_PROCESS = """
import json, sys, urllib.request
from walkme_dic import egress
egress.install(egress.policy_from_environment())
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except Exception as error:
    chain = []
    while error is not None:
        chain.append(type(error).__name__)
        error = error.__cause__ or error.__context__
    print(json.dumps(chain))
else:
    print(json.dumps([]))
"""


@pytest.mark.parametrize(("rules", "refused"), [("", True), (LOOPBACK_JSON, False)])
def test_a_sync_process_is_held_to_the_rules_in_its_environment(listener: Listener, rules: str, refused: bool) -> None:
    done = subprocess.run([sys.executable, "-c", SYNC_PROCESS, f"http://127.0.0.1:{listener.port}/"],
                          env={"PATH": "/usr/bin:/bin", POLICY_ENV: rules, "PYTHONPATH": ":".join(sys.path)},
                          capture_output=True, text=True, timeout=60, check=True)
    chain = json.loads(done.stdout)
    assert ("EgressRefused" in chain) is refused, chain
    assert (listener.connections == 0) is refused


def _eventually(check: object, seconds: float = 5) -> bool:
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(("field", "role", "spec"), [
    ("walkme_connection", "walkMeConnection", {"walkme": {"apiUrl": "http://127.0.0.1:{port}",
                                                          "auth": {"secretRef": {"name": "walkme-api"}}}}),
    ("export_connection", "exportConnection", {"s3": {"bucket": "exports", "region": "us-east-1",
                                                      "endpointUrl": "http://127.0.0.1:{port}"}}),
])
def test_a_sync_job_refuses_a_connection_the_rules_refuse_before_connecting(
    listener: Listener, tmp_path: Path, field: str, role: str, spec: dict[str, Any],
) -> None:
    from tests.unit.test_jobs import REQUEST
    connection = json.loads(json.dumps(spec).replace("{port}", str(listener.port)))
    request = REQUEST.model_copy(update={field: ConnectionSpec.model_validate(connection)})
    result = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "walkme_dic", "sync", "--credentials", str(tmp_path), "--result", str(result)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), POLICY_ENV: "",
             REQUEST_ENV: request.model_dump_json(by_alias=True, exclude_none=True)},
        capture_output=True, text=True, timeout=60, check=False)
    outcome = json.loads(result.read_text())
    assert done.returncode == EXIT_PERMANENT, done.stderr
    assert outcome["reason"] == "EgressDenied" and f"{role}: plain http" in outcome["message"], outcome
    assert listener.connections == 0
