"""DevCluster: the emulated API server on 127.0.0.1 with our CRDs loaded, plus a client and a kubeconfig."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Any

import kmock
import yaml

from walkme_dic.devcluster.auth import DEV_TOKEN, ApiSecurity, GuardedKubernetes, tls_server_class
from walkme_dic.devcluster.emulator import ResourceType
from walkme_dic.kube import ClusterAccess, KubeClient, Login, Resource

REPO_CRDS = Path(__file__).resolve().parents[3] / "crds"


def load_crds(directory: Path = REPO_CRDS) -> list[dict[str, Any]]:
    """The project's CRDs: the committed crds/ when present, else rendered from the models."""
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if files:
        return [yaml.safe_load(f.read_text()) for f in files]
    from walkme_dic.crdgen import render_crds

    return render_crds()


class DevCluster:
    """``async with DevCluster() as cluster:`` — an in-memory Kubernetes API for tests and the demo.

    ``security`` (opt-in) serves HTTPS and lets in only the tokens and client certificates it names.
    """

    def __init__(self, crds: list[dict[str, Any]] | None = None, port: int | None = None,
                 security: ApiSecurity | None = None) -> None:
        self.api = GuardedKubernetes(security=security)
        self.security = security
        for crd in load_crds() if crds is None else crds:
            self.api.register_crd(crd)
        options: dict[str, Any] = {"port": port} if port else {}
        if security is not None:
            options["server_cls"] = tls_server_class(security.server_context())
        self._server = kmock.Server(self.api, **options)
        self._stack = contextlib.AsyncExitStack()
        self.client: KubeClient | None = None

    async def __aenter__(self) -> DevCluster:
        await self._stack.enter_async_context(self.api)
        await self._stack.enter_async_context(self._server)
        self.client = KubeClient(self.access)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        if self.client is not None:
            await self.client.close()
        await self._stack.aclose()

    @property
    def url(self) -> str:
        return str(self._server.url).rstrip("/")

    @property
    def access(self) -> ClusterAccess:
        ca_path = self.security.ca_path if self.security else None
        return ClusterAccess.fixed(Login(server=self.url, method="dev cluster token", token=DEV_TOKEN,
                                         ca_path=ca_path, insecure=ca_path is None, default_namespace="default"))

    def write_kubeconfig(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "walkme-dic-dev", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": DEV_TOKEN}}],
            "contexts": [{"name": "walkme-dic-dev",
                          "context": {"cluster": "walkme-dic-dev", "user": "dev", "namespace": "default"}}],
            "current-context": "walkme-dic-dev",
        }))
        return path

    def resource(self, api_version: str, kind: str) -> Resource:
        group, _, version = api_version.rpartition("/")
        for rtype in self.api.types.values():
            if (rtype.group, rtype.version, rtype.kind) == (group, version, kind):
                return Resource(rtype.group, rtype.version, rtype.plural, rtype.namespaced)
        raise KeyError(f"{api_version} {kind} is not served by the dev cluster")

    def type_of(self, resource: Resource) -> ResourceType:
        return self.api.types[(resource.group, resource.version, resource.plural)]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or merge-patch when it exists (like a client-side `kubectl apply`), over HTTP."""
        assert self.client is not None
        resource = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        namespace = meta.get("namespace", "default") if resource.namespaced else None
        try:
            return await self.client.create(resource, namespace or "", obj)
        except Exception as error:
            if getattr(error, "status", None) != 409:
                raise
        return await self.client.patch(resource, namespace or "", meta["name"], obj)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        assert self.client is not None
        return await self.client.get(self.resource(api_version, kind), namespace, name)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        assert self.client is not None
        resource = self.resource(api_version, kind)
        path = resource.path(namespace)
        if label_selector:
            path += f"?labelSelector={label_selector}"
        return (await self.client.request("GET", path))["items"]

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        return await self.client.patch(self.resource(api_version, kind), namespace, name, patch)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        assert self.client is not None
        await self.client.delete(self.resource(api_version, kind), namespace, name)
