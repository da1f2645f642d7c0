"""Where probes and sync Jobs may connect, as the cluster admin decided it (chart values ``egress.*``).

A tenant chooses the URLs and hosts of its Connections; without rules it could point the operator at
the cloud's metadata server, the API server, a Service of another team or the node's loopback. The
rules are checked twice:

* **on the spec**, before a probe and before a run (:func:`spec_problem`): the scheme is ``https``
  (plain ``http`` only to hosts the admin lists in ``plainHttpHosts``); no user name or password in
  the URL; no whitespace or control characters; the host is a DNS name or a canonical IP literal (not
  ``0x7f000001``, ``2130706433`` or ``0177.1``, which resolvers read as loopback); a name in
  ``deniedHosts`` (default: cluster-internal and metadata names) is refused unless ``allowedHosts``
  lists it; an IP literal is checked as below.
* **at connect time, after DNS resolution** (:func:`enforced`, :func:`install`): every address a name
  resolves to is checked where the client opens its socket (``socket.getaddrinfo``), so a name that
  resolves, or re-resolves (DNS rebinding), to a refused address never gets a connection. Refused by
  default: loopback, link-local (cloud metadata at 169.254.169.254 among them), unspecified,
  multicast and the metadata addresses of AWS (IPv6) and Alibaba; ``deniedCIDRs`` adds ranges (the
  cluster's Pod and Service ranges, say); ``allowedCIDRs`` opens any of them again. IPv4-mapped IPv6
  addresses are checked as the IPv4 address they carry.

In the operator only probe threads are guarded (the operator itself talks to the API server, which
may well sit on a refused address); a sync Job's process is guarded as a whole. With an HTTP(S) proxy
configured, the connection goes to the proxy, whose own rules then decide the rest: the proxy's host
is allowed for the Job (``job_policy``), and the name checks on the spec still apply.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from walkme_dic.api.connection import ConnectionSpec

POLICY_ENV = "WALKME_DIC_EGRESS_POLICY"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_NETWORKS: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "::1/128",  # loopback: the node, or the operator's own Pod
    "169.254.0.0/16", "fe80::/10",  # link-local: 169.254.169.254 is the metadata server of AWS, GCP, Azure
    "0.0.0.0/8", "::/128",  # "this host": connects to the local machine on Linux
    "224.0.0.0/4", "ff00::/8", "255.255.255.255/32",  # multicast, broadcast
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
))
METADATA_NETWORKS: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128",  # instance metadata; ECS/EKS pod identity
))
DENIED_HOSTS = (
    "localhost", "*.localhost", "kubernetes", "kubernetes.default", "*.svc", "*.cluster.local", "*.internal",
    "metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal",
)
METADATA_HOSTS = ("metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                       r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$")
_NUMERIC = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)


class EgressRefused(socket.gaierror):
    """A connection the admin's egress rules refuse (a resolver error to the client: it never connects)."""


class EgressPolicy(BaseModel):
    """The admin's rules (JSON in $WALKME_DIC_EGRESS_POLICY, from the chart's ``egress`` values)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    plain_http_hosts: tuple[str, ...] = Field(
        default=(), description="Hosts (exact, or *.suffix) that may be reached over plain http.")
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Names allowed although deniedHosts matches them (exact, or *.suffix).")
    denied_hosts: tuple[str, ...] = Field(default=DENIED_HOSTS, description="Names refused (exact, or *.suffix).")
    allowed_cidrs: tuple[str, ...] = Field(
        default=(), alias="allowedCIDRs", description="Address ranges allowed although refused by default.")
    denied_cidrs: tuple[str, ...] = Field(
        default=(), alias="deniedCIDRs", description="Address ranges refused besides the default ones.")

    def host_problem(self, host: str) -> str | None:
        """Why connecting to the name or IP literal ``host`` is refused, or None."""
        name = host.strip("[]").rstrip(".").lower()
        literal = _ip(name)
        if literal is not None:
            return self.address_problem(str(literal))
        if not _DNS_NAME.match(name) or _NUMERIC.match(name):
            return f"{host!r} is not a DNS name or a canonical IP address"
        if _matches(name, self.denied_hosts) and not _matches(name, self.allowed_hosts):
            return f"host {name!r} is a cluster-internal or metadata name the egress rules refuse"
        return None

    def address_problem(self, address: str) -> str | None:
        """Why connecting to ``address`` (an IP, as a resolver returns it) is refused, or None."""
        ip = _ip(address.split("%", maxsplit=1)[0])
        if ip is None:
            return f"{address!r} is not an IP address"
        if any(ip in network for network in _networks(self.allowed_cidrs)):
            return None
        if any(ip in network for network in (*REFUSED_NETWORKS, *_networks(self.denied_cidrs))):
            return f"address {ip} is in a range the egress rules refuse"
        return None

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` may not be used, or None (never raises, whatever the text)."""
        if any(ord(c) < 33 or ord(c) == 127 for c in url):
            return "the URL contains whitespace or control characters"
        try:
            parts = urlsplit(url)
            host, _port = parts.hostname, parts.port
        except ValueError as error:
            return f"the URL cannot be parsed ({error})"
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return "the URL carries a user name or password; put credentials in the Connection's Secret"
        if not host:
            return "the URL has no host"
        if parts.scheme == "http" and not _matches(host.rstrip(".").lower(), self.plain_http_hosts):
            return (f"plain http to {host!r} is not allowed (use https, or the cluster admin lists the host in "
                    "egress.plainHttpHosts)")
        if parts.scheme not in ("http", "https"):
            return f"scheme {parts.scheme!r} is not http or https"
        return self.host_problem(host)

    def job_policy(self, *, metadata: bool, proxies: Iterable[str]) -> EgressPolicy:
        """The rules for a run: these, plus the metadata server when the run uses ambient identity (the SDKs
        fetch its tokens there) and the proxy hosts the Jobs are given."""
        hosts = [urlsplit(p if "//" in p else f"//{p}").hostname or "" for p in proxies]
        allowed = [*self.allowed_hosts, *(h for h in hosts if h)]
        cidrs = [*self.allowed_cidrs, *(str(ip) for h in hosts if (ip := _ip(h)) is not None)]
        if metadata:
            allowed += METADATA_HOSTS
            cidrs += [str(n) for n in METADATA_NETWORKS]
        return self.model_copy(update={"allowed_hosts": tuple(dict.fromkeys(allowed)),
                                       "allowed_cidrs": tuple(dict.fromkeys(cidrs))})


def _ip(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _networks(cidrs: Iterable[str]) -> Iterator[Network]:
    """The ranges written in ``cidrs``; an IPv4-mapped IPv6 range as the IPv4 range it is (as addresses are)."""
    for cidr in cidrs:
        with contextlib.suppress(ValueError):
            network = ipaddress.ip_network(cidr, strict=False)
            if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(MAPPED):
                mapped = network.network_address.ipv4_mapped
                assert mapped is not None
                network = ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}")
            yield network


def _matches(name: str, patterns: Iterable[str]) -> bool:
    for written in patterns:
        pattern = written.lower().rstrip(".")
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def spec_urls(spec: ConnectionSpec) -> list[str]:
    """The URLs ``spec`` connects to that a tenant chose (defaults such as AWS's own endpoints excluded)."""
    urls = [
        spec.s3 and spec.s3.endpoint_url, spec.azure_blob and spec.azure_blob.account_url,
        spec.gcs and spec.gcs.endpoint_url, spec.webhook and spec.webhook.url, spec.walkme and spec.walkme.api_url,
        spec.walkme and spec.walkme.insights_export_url,
        spec.salesforce and spec.salesforce.instance_url, spec.salesforce and spec.salesforce.login_url,
    ]
    return [url for url in urls if url]


def spec_problem(spec: ConnectionSpec, policy: EgressPolicy) -> str | None:
    """Why a Connection with ``spec`` may not be used under ``policy``, naming the field's value, or None."""
    for url in spec_urls(spec):
        problem = policy.url_problem(url)
        if problem is not None:
            return f"{problem}: {_shown(url)}"
    if spec.sftp:
        problem = policy.host_problem(spec.sftp.host)
        if problem is not None:
            return f"sftp.host: {problem}"
    return None


def _shown(url: str) -> str:
    """``url`` for a message: without any user name or password, control characters escaped."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        url = parts._replace(netloc=netloc).geturl()
    except ValueError:
        url = "the URL"
    return url.encode("unicode_escape").decode("ascii")


def egress_message(problem: str) -> str:
    return (f"egress refused by the cluster admin's rules: {problem} (chart values egress.*; the operator's "
            "Helm values or its --egress-policy flag)")


# connect-time guard --------------------------------------------------------------------------------------

_original_getaddrinfo = socket.getaddrinfo
_local = threading.local()
_process_policy: list[EgressPolicy] = []


class DeadlinePassed(TimeoutError):
    """A connection opened after the thread's deadline (a probe past its timeout, still in a client's retry)."""


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    policy = getattr(_local, "policy", None) or (_process_policy[0] if _process_policy else None)
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlinePassed(f"no new connection to {host!r}: the deadline passed")
    if policy is None or host is None:
        return _original_getaddrinfo(host, port, *args, **kwargs)
    name = host.decode("idna") if isinstance(host, bytes) else str(host)
    problem = policy.host_problem(name) if _ip(name) is None else None
    if problem is not None:
        raise EgressRefused(socket.EAI_NONAME, egress_message(problem))
    results = _original_getaddrinfo(host, port, *args, **kwargs)
    allowed = [result for result in results if policy.address_problem(str(result[4][0])) is None]
    if not allowed:
        raise EgressRefused(socket.EAI_NONAME,
                            egress_message(f"{name!r} resolves only to addresses in ranges the rules refuse"))
    return allowed


def _hook() -> None:
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


@contextlib.contextmanager
def enforced(policy: EgressPolicy, *, seconds: float | None = None) -> Iterator[None]:
    """Within the block, connections this thread opens obey ``policy`` (other threads are untouched) and,
    given ``seconds``, none is opened once that long has passed: a client's retry loop ends there."""
    _hook()
    previous = getattr(_local, "policy", None), getattr(_local, "deadline", None)
    _local.policy = policy
    _local.deadline = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _local.policy, _local.deadline = previous


def install(policy: EgressPolicy) -> None:
    """Every connection of this process obeys ``policy`` from now on (a sync Job's process)."""
    _hook()
    _process_policy[:] = [policy]


def policy_from_environment() -> EgressPolicy:
    """The rules in $WALKME_DIC_EGRESS_POLICY, the defaults when it is unset; ValueError when it is invalid."""
    text = os.environ.get(POLICY_ENV, "").strip()
    return EgressPolicy.model_validate_json(text) if text else EgressPolicy()
