"""A Pod's volumes laid out as folders on this machine, the way a kubelet fills them: Secret and
ConfigMap keys as files (``items``, ``defaultMode``, ``optional``), emptyDir as an empty folder anyone may
write, projected volumes (service-account token by TokenRequest, ConfigMap, Secret, downward API), and
downwardAPI volumes. Files belong to the container's uid and the Pod's fsGroup, as a kubelet's would be
readable to them. Unsupported sources (hostPath, PVCs, CSI…) raise ``VolumeError`` naming the volume."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walkme_dic.kube import SECRETS, ApiError, KubeClient, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")
DEFAULT_MODE = 0o644
TOKEN_REFRESH_FRACTION = 0.8  # a kubelet asks for a new token once 80 % of its life has gone


class VolumeError(Exception):
    """A volume the node agent cannot provide (yet): the Pod waits, with this as the reason's message."""


@dataclass
class Token:
    """A projected service-account token and when to ask for a fresh one."""

    path: Path
    request: dict[str, Any]
    service_account: str
    refresh_at: float = 0.0


@dataclass
class PodVolumes:
    client: KubeClient
    pod: dict[str, Any]
    root: Path
    owner: tuple[int, int]
    tokens: list[Token] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    async def materialize(self) -> dict[str, Path]:
        """Every volume of the Pod as a folder; returns name → folder."""
        folders: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            folder = self.root / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            await self._fill(volume, folder)
            folders[volume["name"]] = folder
        return folders

    async def _fill(self, volume: dict[str, Any], folder: Path) -> None:
        if "emptyDir" in volume:
            folder.chmod(0o777)
        elif "secret" in volume:
            source = volume["secret"]
            files = await self._keys(SECRETS, source["secretName"], source.get("items"), source.get("optional"))
            self._write(folder, files, source.get("defaultMode", DEFAULT_MODE))
        elif "configMap" in volume:
            source = volume["configMap"]
            files = await self._keys(CONFIGMAPS, source["name"], source.get("items"), source.get("optional"))
            self._write(folder, files, source.get("defaultMode", DEFAULT_MODE))
        elif "projected" in volume:
            await self._projected(volume["projected"], folder)
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            self._write(folder, self._downward(source.get("items") or []), source.get("defaultMode", DEFAULT_MODE))
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(f"volume {volume['name']!r}: the node agent does not provide {', '.join(kinds)} volumes "
                              "(it has Secret, ConfigMap, emptyDir, projected and downwardAPI)")

    async def _projected(self, projected: dict[str, Any], folder: Path) -> None:
        mode = projected.get("defaultMode", DEFAULT_MODE)
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                self.tokens.append(Token(folder / token["path"], {
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"audiences": [token["audience"]] if token.get("audience") else [],
                             "expirationSeconds": int(token.get("expirationSeconds", 3600)),
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod["metadata"]["name"],
                                                "uid": self.pod["metadata"]["uid"]}}},
                    self.pod["spec"].get("serviceAccountName") or "default"))
            elif "configMap" in source:
                item = source["configMap"]
                self._write(folder, await self._keys(CONFIGMAPS, item["name"], item.get("items"), item.get("optional")),
                            mode)
            elif "secret" in source:
                item = source["secret"]
                self._write(folder, await self._keys(SECRETS, item["name"], item.get("items"), item.get("optional")),
                            mode)
            elif "downwardAPI" in source:
                self._write(folder, self._downward(source["downwardAPI"].get("items") or []), mode)
            else:
                raise VolumeError(f"projected source {sorted(source)} is not provided by the node agent")
        await self.refresh_tokens(force=True)

    async def refresh_tokens(self, force: bool = False) -> None:
        """Ask for a new token where one is due (TokenRequest, as the Node authorizer lets a node do)."""
        for token in self.tokens:
            if not force and time.time() < token.refresh_at:
                continue
            path = f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{token.service_account}/token"
            answer = await self.client.request("POST", path, token.request)
            lifetime = int(token.request["spec"]["expirationSeconds"])
            token.refresh_at = time.time() + TOKEN_REFRESH_FRACTION * lifetime
            self._write(token.path.parent, {token.path.name: answer["status"]["token"].encode()}, DEFAULT_MODE)

    async def _keys(self, resource: Resource, name: str, items: list[dict[str, Any]] | None,
                    optional: bool | None) -> dict[str, bytes]:
        try:
            obj = await self.client.get(resource, self.namespace, name)
        except ApiError as error:
            if error.status == 404 and optional:
                return {}
            raise VolumeError(f"{resource.plural[:-1]} {name!r}: {error}") from error
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()} if resource is SECRETS else {
            **{k: str(v).encode() for k, v in (obj.get("data") or {}).items()},
            **{k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}}
        if not items:
            return data
        missing = [item["key"] for item in items if item["key"] not in data]
        if missing and not optional:
            raise VolumeError(f"{resource.plural[:-1]} {name!r} has no key {missing[0]!r}")
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def _downward(self, items: list[dict[str, Any]]) -> dict[str, bytes]:
        return {item["path"]: field_value(self.pod, item["fieldRef"]["fieldPath"]).encode()
                for item in items if "fieldRef" in item}

    def _write(self, folder: Path, files: dict[str, bytes], mode: int) -> None:
        """Each file written beside itself and renamed, so a reader never sees half of a refreshed one."""
        uid, gid = self.owner
        for relative, content in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(content)
            os.chown(partial, uid, gid)
            partial.chmod(mode)
            partial.replace(target)
        for directory in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            os.chown(directory, uid, gid)


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API fieldPath of ``pod``: metadata.name/namespace/uid, labels['x'], annotations['x'],
    spec.nodeName/serviceAccountName, status.podIP/hostIP."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    for prefix, values in (("metadata.labels", meta.get("labels") or {}),
                           ("metadata.annotations", meta.get("annotations") or {})):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(values.get(path[len(prefix) + 2:-2], ""))
    known = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
             "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
             "spec.serviceAccountName": spec.get("serviceAccountName"),
             "status.podIP": status.get("podIP", "127.0.0.1"), "status.hostIP": status.get("hostIP", "127.0.0.1")}
    if path not in known:
        raise VolumeError(f"fieldPath {path!r} is not provided by the node agent")
    return str(known[path] or "")
