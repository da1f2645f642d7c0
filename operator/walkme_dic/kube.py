"""How the operator reaches the API server: credentials loaded by the `kubernetes` package, and a
small async client (aiohttp) for the few verbs the operator needs.

Credentials. `ClusterAccess` loads them with the `kubernetes` package's own config loaders — the
in-cluster service account, or kubeconfig files (a KUBECONFIG list is merged, ``--context`` picks a
context; CA/client certificate as data or files, paths relative to each kubeconfig's folder,
``token``, ``tokenFile``, ``exec`` plugins, auth providers) — and never parses a kubeconfig itself.
Each load yields a `Login`: server, TLS files, bearer token, and when it stops being good (an exec
plugin's ``expirationTimestamp``, a JWT's ``exp``, a client certificate's notAfter). Both clients use
the same `ClusterAccess`:

* kopf (watches, its own patches) gets a `Login` from the ``@kopf.on.login`` handler as a
  ``kopf.ConnectionInfo`` with ``expiration`` set a little before the real expiry, so kopf logs in
  again before the credentials run out; kopf also logs in again after a 401;
* `KubeClient` (Jobs, Secrets, Events, status of other objects) loads again before a request when
  the `Login` is due for renewal, sends its token per request, and on a 401 asks for a fresh load
  once and retries.

A login is always a fresh load from the source (token file re-read, exec plugin re-run), so a token
the kubelet rotated, a certificate renewed in its file or a plugin's new credential is picked up
without a restart. A refresh that yields the very credentials the server just refused logs one line
naming the server and the auth method (never the token) and the call fails with a 401 ApiError.

Why the writes stay on aiohttp rather than going through `kubernetes.client`: that client is
synchronous (urllib3), so inside kopf's event loop every call needs a worker thread. Measured with
`python -m bench.kube_writes --writes 2000` (the real kube-apiserver, 8 writes at a time, as kopf's
8 workers, 5 alternating pairs): aiohttp 307 status patches/s median (226-327) at 0.45 CPU-s per 1,000;
the `kubernetes` client in threads 259/s (234-294) at 0.90 CPU-s per 1,000 — the apiserver limits both
rates, the threads cost twice the operator's CPU for the same writes, which at 2,000 Integrations is
the start-up burst. The `kubernetes` package does here what it is
best at — knowing every way a cluster hands out credentials — and both clients share its result.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography import x509
from kubernetes.client import Configuration
from kubernetes.config import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
log = logging.getLogger("walkme_dic.kube")


class CredentialsError(Exception):
    """No usable credentials: what was tried and what to do."""


@dataclass(frozen=True)
class Login:
    """One loaded set of credentials: what an HTTP client needs to talk to the API server."""

    server: str
    method: str  # how the credentials were obtained, for log lines: "token file /path", "exec plugin aws", …
    token: str | None = field(default=None, repr=False)
    scheme: str = "Bearer"
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False
    default_namespace: str | None = None
    renew_at: datetime | None = None  # load again from then on: a little before the credentials expire
    cert_expiry: datetime | None = None  # the client certificate's notAfter: tells a renewed file from the old one

    def stale(self) -> bool:
        return self.renew_at is not None and datetime.now(UTC) >= self.renew_at

    def credentials(self) -> tuple[str, str | None, str | None, datetime | None]:
        """What a refusal is about: the server and what we showed it."""
        return self.server, self.token, self.cert_path, self.cert_expiry

    def tls_key(self) -> tuple[str | None, str | None, str | None, bool, datetime | None]:
        """What the TLS connection depends on (the token goes in a header, per request); a certificate
        renewed in the same file is a new key, so it gets a new session."""
        return self.ca_path, self.cert_path, self.key_path, self.insecure, self.cert_expiry

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return True
        if self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_path)
        if self.cert_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"{self.scheme} {self.token}"} if self.token else {}


def _token_expiry(token: str | None) -> datetime | None:
    """A JWT's ``exp`` claim (service-account tokens are JWTs); None for opaque tokens."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (ValueError, KeyError, TypeError):
        return None


def _certificate_expiry(path: str | None) -> datetime | None:
    """A client certificate's notAfter; None without one (or one we cannot read: TLS setup then says why)."""
    if not path:
        return None
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def _split_authorization(value: str | None) -> tuple[str, str | None]:
    """``"Bearer abc"`` → ("Bearer", "abc"); token files may end in a newline, which a header must not carry."""
    value = (value or "").strip()
    scheme, _, token = value.partition(" ")
    return (scheme.capitalize(), token) if token else ("Bearer", value or None)


def _login_from(configuration: Configuration, method: str, namespace: str | None,
                plugin_expiry: datetime | None) -> Login:
    scheme, token = _split_authorization(
        configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization"))
    cert_expiry = _certificate_expiry(configuration.cert_file)
    expiries = [e for e in (plugin_expiry, _token_expiry(token), cert_expiry) if e is not None]
    return Login(
        server=configuration.host.rstrip("/"), method=method, token=token, scheme=scheme,
        ca_path=configuration.ssl_ca_cert, cert_path=configuration.cert_file, key_path=configuration.key_file,
        insecure=not configuration.verify_ssl, default_namespace=namespace,
        renew_at=_renew_at(min(expiries)) if expiries else None, cert_expiry=cert_expiry,
    )


def _renew_at(expires: datetime) -> datetime:
    """A fifth of the lifetime left before expiry, at most a minute before (a 1 h token: at 59 min)."""
    return expires - min(timedelta(minutes=1), max(expires - datetime.now(UTC), timedelta(0)) / 5)


def _user_method(user: dict[str, Any], cert_path: str | None) -> str:
    if "exec" in user:
        return f"exec plugin {user['exec'].get('command', '?')}"
    if "auth-provider" in user:
        return f"auth provider {user['auth-provider'].get('name', '?')}"
    if "tokenFile" in user:
        return f"token file {user['tokenFile']}"
    if "token" in user:
        return "token"
    if cert_path:
        return "client certificate"
    if "username" in user:
        return "basic auth"
    return "no credentials"


def load_kubeconfig(paths: str, context: str | None = None) -> Login:
    """Load a kubeconfig (or a ``:``-separated list, merged like kubectl does) with the `kubernetes` package."""
    try:
        merger = KubeConfigMerger(os.path.expanduser(paths))
        if merger.config is None:
            raise ConfigException(f"no kubeconfig found at {paths}")
        loader = KubeConfigLoader(config_dict=merger.config, active_context=context, config_base_path=None)
        configuration = Configuration()
        loader.load_and_set(configuration)
    except (ConfigException, OSError, ValueError) as error:
        raise CredentialsError(f"kubeconfig {paths} (context {context or 'current-context'}): {error}") from error
    chosen = loader.current_context["context"]
    entry = merger.config["users"].get_with_name(chosen.get("user"), safe=True) if "users" in merger.config else None
    user = (entry.safe_get("user") if entry is not None else None) or {}
    method = _user_method(user, configuration.cert_file)
    if "exec" in user and not (
            configuration.api_key.get("BearerToken") or configuration.cert_file):
        raise CredentialsError(f"kubeconfig {paths}: the {method} gave no credential (see the log line above)")
    return _login_from(configuration, method, chosen.get("namespace"), getattr(loader, "expiry", None))


def load_in_cluster(service_account_dir: Path = SA_DIR, environ: dict[str, str] | None = None) -> Login:
    """The pod's service account (token re-read from the file the kubelet rotates) and the service env vars."""
    loader = InClusterConfigLoader(token_filename=str(service_account_dir / "token"),
                                   cert_filename=str(service_account_dir / "ca.crt"),
                                   try_refresh_token=False, environ=environ if environ is not None else os.environ)
    configuration = Configuration()
    try:
        loader.load_and_set(configuration)
    except ConfigException as error:
        raise CredentialsError(f"in-cluster service account {service_account_dir}: {error}") from error
    namespace_file = service_account_dir / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    return _login_from(configuration, f"in-cluster service account {service_account_dir}", namespace, None)


class ClusterAccess:
    """The one source of credentials for kopf and KubeClient: loads, and loads again when asked."""

    def __init__(self, load: Callable[[], Login]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._current: Login | None = None
        # refused credentials: each named once
        self._refused: set[tuple[str, str | None, str | None, datetime | None]] = set()

    @classmethod
    def discover(cls, kubeconfig: str | None = None, context: str | None = None,
                 service_account_dir: Path = SA_DIR) -> ClusterAccess:
        """Like kubectl and client-go: --kubeconfig, then $KUBECONFIG, then in-cluster, then ~/.kube/config."""
        paths = kubeconfig or os.environ.get("KUBECONFIG")
        if paths:
            return cls(lambda: load_kubeconfig(paths, context))
        if "KUBERNETES_SERVICE_HOST" in os.environ and context is None:
            return cls(lambda: load_in_cluster(service_account_dir))
        return cls(lambda: load_kubeconfig(DEFAULT_KUBECONFIG, context))

    @classmethod
    def fixed(cls, login: Login) -> ClusterAccess:
        return cls(lambda: login)

    def current(self) -> Login:
        """The current credentials; loaded afresh when there are none yet or they are about to expire."""
        with self._lock:
            if self._current is None or self._current.stale():
                self._current = self._load()
            return self._current

    def refused(self, login: Login) -> Login:
        """The server answered 401 to ``login``: load again (once for all callers that saw the same refusal).

        Logs one line when the fresh load gives the same credentials back; the caller then fails.
        """
        with self._lock:
            if self._current is login or self._current is None:
                self._current = self._load()
            fresh = self._current
        if fresh.credentials() == login.credentials() and login.credentials() not in self._refused:
            self._refused.add(login.credentials())
            log.error("the API server %s refused the credentials from %s (401 Unauthorized), and loading them "
                      "again gave the same ones: renew them or fix the kubeconfig/service account",
                      login.server, login.method)
        return fresh


class ApiError(Exception):
    """An API answer other than 2xx, with the Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace)}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name))
        if sub:
            parts.append(sub)
        return "/".join(parts)


PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
SECRETS = Resource("", "v1", "secrets")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
JOBS = Resource("batch", "v1", "jobs")
LEASES = Resource("coordination.k8s.io", "v1", "leases")


class KubeClient:
    """get / create / merge-patch / replace / delete over aiohttp; raises ApiError.

    The bearer token goes in each request's headers, so a rotated token needs no new session; new TLS
    material (a client certificate from an exec plugin, say) gets a new session, and the old one is
    closed with the client so that requests still using it finish.
    """

    def __init__(self, access: ClusterAccess, user_agent: str = "walkme-dic") -> None:
        self.access = access
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._tls_key: tuple[str | None, str | None, str | None, bool, datetime | None] | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self._login: Login | None = None

    def _session_for(self, login: Login) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed or login.tls_key() != self._tls_key:
            if self._session is not None:
                self._retired.append(self._session)
            connector = aiohttp.TCPConnector(ssl=login.ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self.user_agent}, connector=connector,
                timeout=aiohttp.ClientTimeout(total=30),
            )
            self._tls_key = login.tls_key()
        return self._session

    async def _current_login(self) -> Login:
        if self._login is None or self._login.stale():
            # a load may run an exec plugin or read files: not in the event loop's thread
            self._login = await asyncio.to_thread(self.access.current)
        return self._login

    async def _refused(self, login: Login) -> Login:
        self._login = await asyncio.to_thread(self.access.refused, login)
        return self._login

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            if session is not None:
                await session.close()

    async def request(self, method: str, path: str, body: Any = None, content_type: str | None = None,
                      accept: str = "application/json") -> Any:
        data = json.dumps(body) if body is not None else None
        login = await self._current_login()
        for attempt in (1, 2):
            headers = {"Content-Type": content_type or "application/json", "Accept": accept, **login.headers()}
            async with self._session_for(login).request(method, login.server + path, data=data,
                                                        headers=headers) as resp:
                text = await resp.text()
                if resp.status == 401 and attempt == 1:
                    login = await self._refused(login)
                    continue
                payload = json.loads(text) if text.startswith("{") else {}
                if resp.status >= 400:
                    raise ApiError(resp.status, payload.get("reason", resp.reason or ""), payload.get("message", text))
                return payload
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def watch(
        self, resource: Resource, namespace: str | None, resource_version: str, timeout_seconds: int = 300,
        query: str = "",
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) from a watch that starts after ``resource_version``; ends when the server ends it.
        ``query`` adds parameters such as a ``fieldSelector=…`` (already URL-encoded)."""
        path = f"{resource.path(namespace)}?watch=true&resourceVersion={resource_version}" \
               f"&timeoutSeconds={timeout_seconds}&allowWatchBookmarks=false{'&' + query if query else ''}"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        login = await self._current_login()
        async with self._session_for(login).get(login.server + path, timeout=timeout,
                                                headers=login.headers()) as resp:
            if resp.status == 401:
                await self._refused(login)  # the caller's next watch uses the fresh login
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", await resp.text())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise ApiError(int(status.get("code", 500)), status.get("reason", ""), status.get("message", ""))
                yield event["type"], event["object"]

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        return await self.request("GET", resource.path(namespace, name))

    async def get_metadata(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """The object's metadata only (a PartialObjectMetadata, which the API server cuts from the object):
        a Secret's resourceVersion and labels without its data crossing the wire."""
        return await self.request("GET", resource.path(namespace, name), accept=PARTIAL_METADATA)

    async def create(self, resource: Resource, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", resource.path(namespace), body)

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, "status" if status else None)
        return await self.request("PATCH", path, patch, "application/merge-patch+json")

    async def replace(self, resource: Resource, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT: fails with 409 when ``body``'s resourceVersion is no longer the stored one."""
        return await self.request("PUT", resource.path(namespace, name), body)

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete with background propagation; an object that is already gone is fine."""
        try:
            await self.request("DELETE", resource.path(namespace, name), {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.status != 404:
                raise

