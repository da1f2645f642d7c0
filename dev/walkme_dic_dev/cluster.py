"""`Cluster`: the admin's client of a running control plane, with what tests and the demo do often —
install the CRDs, apply a manifest (creating its namespace, labelled for the restricted Pod Security
level, as a platform team's tenant namespaces are), get/list/patch/delete by apiVersion and kind, and
remove every namespace a test made so that the next test starts clean."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import yaml

from walkme_dic.kube import ApiError, ClusterAccess, KubeClient, Resource
from walkme_dic_dev.controlplane import ControlPlane

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
PODS = Resource("", "v1", "pods")
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}


def load_crds(directory: Path = REPO_CRDS) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]


class Cluster:
    """``async with Cluster(control_plane) as cluster:`` — the admin's view, closed with the block."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.access = ClusterAccess.discover(kubeconfig=str(control_plane.admin_kubeconfig))
        self.client = KubeClient(self.access, user_agent="walkme-dic-tests")
        self._kinds: dict[tuple[str, str], Resource] = {}

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()

    @property
    def url(self) -> str:
        return self.control_plane.url

    def write_kubeconfig(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.control_plane.admin_kubeconfig, path)
        return path

    async def resource(self, api_version: str, kind: str) -> Resource:
        """The REST resource of ``kind`` in ``api_version``, from the server's discovery."""
        if (api_version, kind) not in self._kinds:
            group, _, version = api_version.rpartition("/")
            path = f"/apis/{api_version}" if group else f"/api/{version}"
            for entry in (await self.client.request("GET", path))["resources"]:
                if "/" not in entry["name"]:
                    self._kinds[(api_version, entry["kind"])] = Resource(group, version, entry["name"],
                                                                         bool(entry["namespaced"]))
        try:
            return self._kinds[(api_version, kind)]
        except KeyError:
            raise KeyError(f"the API server serves no {kind} in {api_version}") from None

    async def install_crds(self, crds: list[dict[str, Any]] | None = None) -> None:
        """Create or replace the project's CRDs and wait until each is Established."""
        for crd in load_crds() if crds is None else crds:
            name = crd["metadata"]["name"]
            try:
                await self.client.create(CRDS, "", crd)
            except ApiError as error:
                if error.status != 409:
                    raise
                current = await self.client.get(CRDS, "", name)
                await self.client.replace(CRDS, "", name, {**crd, "metadata": {
                    **crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}})
            await self._until(lambda name=name: self._established(name), f"CRD {name} Established and listable")
        self._kinds.clear()

    async def _established(self, name: str) -> bool:
        crd = await self.client.get(CRDS, "", name)
        if not any(c["type"] == "Established" and c["status"] == "True"
                   for c in crd.get("status", {}).get("conditions") or []):
            return False
        spec = crd["spec"]
        served = next(v["name"] for v in spec["versions"] if v.get("storage"))
        try:  # Established comes before the storage answers ("storage is (re)initializing", 429)
            await self.client.request("GET", f"/apis/{spec['group']}/{served}/{spec['names']['plural']}?limit=1")
        except ApiError as error:
            if error.status == 429:
                return False
            raise
        return True

    async def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """A namespace (restricted Pod Security unless ``labels`` say otherwise) and its default ServiceAccount."""
        try:
            await self.client.create(NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": name, "labels": RESTRICTED if labels is None else labels}})
        except ApiError as error:
            if error.status != 409:
                raise

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create, or merge-patch when it exists (like a client-side ``kubectl apply``)."""
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        namespace = meta.get("namespace", "default") if resource.namespaced else ""
        if namespace:
            await self.ensure_namespace(namespace)
        try:
            return await self.client.create(resource, namespace, obj)
        except ApiError as error:
            if error.status != 409:
                raise
        return await self.client.patch(resource, namespace, meta["name"], obj)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.client.get(await self.resource(api_version, kind), namespace, name)

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        path = (await self.resource(api_version, kind)).path(namespace)
        if label_selector:
            path += f"?labelSelector={label_selector}"
        return (await self.client.request("GET", path))["items"]

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: dict[str, Any]) -> dict[str, Any]:
        return await self.client.patch(await self.resource(api_version, kind), namespace, name, patch)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        await self.client.delete(await self.resource(api_version, kind), namespace, name)

    async def reset(self, timeout: float = 60) -> None:
        """Delete every namespace but the system ones and wait until they are gone. Finalizers of our
        custom resources (the operator that would remove them may be stopped) and Pods (no node agent
        may be left to confirm they stopped) are removed first, as an admin would."""
        names = [ns["metadata"]["name"] for ns in (await self.client.request("GET", NAMESPACES.path()))["items"]
                 if ns["metadata"]["name"] not in SYSTEM_NAMESPACES]
        for kind in ("Integration", "Connection"):
            resource = await self.resource("integrations.walkme.io/v1alpha1", kind)
            for obj in (await self.client.request("GET", resource.path()))["items"]:
                if obj["metadata"].get("finalizers"):
                    meta = obj["metadata"]
                    unfinalized = {"metadata": {"finalizers": None}}
                    await self._ignore_missing(
                        self.client.patch(resource, meta["namespace"], meta["name"], unfinalized))
        for name in names:
            await self.client.delete(NAMESPACES, "", name)
        for pod in (await self.client.request("GET", PODS.path()))["items"]:
            meta = pod["metadata"]
            if meta["namespace"] in names:
                if meta.get("finalizers"):
                    await self._ignore_missing(self.client.patch(PODS, meta["namespace"], meta["name"],
                                                                 {"metadata": {"finalizers": None}}))
                await self._ignore_missing(self.client.request(
                    "DELETE", PODS.path(meta["namespace"], meta["name"]), {"gracePeriodSeconds": 0}))
        await self._until(lambda: self._gone(names), f"namespaces {names} deleted", timeout)

    async def _gone(self, names: list[str]) -> bool:
        left = {ns["metadata"]["name"] for ns in (await self.client.request("GET", NAMESPACES.path()))["items"]}
        return not left.intersection(names)

    @staticmethod
    async def _ignore_missing(call: Any) -> None:
        try:
            await call
        except ApiError as error:
            if error.status != 404:
                raise

    @staticmethod
    async def _until(check: Any, what: str, timeout: float = 60) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if await check():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
