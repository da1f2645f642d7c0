"""A small async Kubernetes API client (aiohttp): the few verbs the operator needs.

kopf watches through its own client; this one does the writes kopf does not do for us
(Jobs, status of other objects, Secrets reads). Both log in with the same ClusterAccess.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to authenticate to it."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    insecure: bool = False
    default_namespace: str = "default"

    @classmethod
    def in_cluster(cls) -> ClusterAccess:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        return cls(
            server=f"https://{host}:{port}",
            token=(SA_DIR / "token").read_text().strip(),
            ca_path=str(SA_DIR / "ca.crt"),
            default_namespace=(SA_DIR / "namespace").read_text().strip(),
        )

    @classmethod
    def from_kubeconfig(cls, path: str) -> ClusterAccess:
        config = yaml.safe_load(Path(path).read_text())
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next((u["user"] for u in config.get("users", []) if u["name"] == context.get("user")), {})
        return cls(
            server=cluster["server"],
            token=user.get("token"),
            ca_path=cluster.get("certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            default_namespace=context.get("namespace", "default"),
        )

    @classmethod
    def discover(cls, kubeconfig: str | None = None) -> ClusterAccess:
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            return cls.from_kubeconfig(path)
        if "KUBERNETES_SERVICE_HOST" in os.environ:
            return cls.in_cluster()
        return cls.from_kubeconfig(str(Path.home() / ".kube" / "config"))


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


SECRETS = Resource("", "v1", "secrets")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
JOBS = Resource("batch", "v1", "jobs")


class KubeClient:
    """get / create / merge-patch / delete; one aiohttp session; raises ApiError."""

    def __init__(self, access: ClusterAccess, user_agent: str = "walkme-dic") -> None:
        self.access = access
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.access.insecure:
            return False
        return ssl.create_default_context(cafile=self.access.ca_path) if self.access.ca_path else True

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self.user_agent}
            if self.access.token:
                headers["Authorization"] = f"Bearer {self.access.token}"
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=32)
            self._session = aiohttp.ClientSession(
                headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        headers = {"Content-Type": content_type or "application/json", "Accept": "application/json"}
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, self.access.server + path, data=data, headers=headers) as resp:
            text = await resp.text()
            payload = json.loads(text) if text else {}
            if resp.status >= 400:
                raise ApiError(resp.status, payload.get("reason", resp.reason or ""), payload.get("message", text))
            return payload

    async def watch(
        self, resource: Resource, namespace: str | None, resource_version: str, timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) from a watch that starts after ``resource_version``; ends when the server ends it."""
        path = f"{resource.path(namespace)}?watch=true&resourceVersion={resource_version}" \
               f"&timeoutSeconds={timeout_seconds}&allowWatchBookmarks=false"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        async with self.session.get(self.access.server + path, timeout=timeout) as resp:
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

    async def create(self, resource: Resource, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", resource.path(namespace), body)

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, "status" if status else None)
        return await self.request("PATCH", path, patch, "application/merge-patch+json")

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete with background propagation; an object that is already gone is fine."""
        try:
            await self.request("DELETE", resource.path(namespace, name), {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.status != 404:
                raise
