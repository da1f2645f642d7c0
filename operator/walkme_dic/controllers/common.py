"""Small helpers the controllers share: bodies to plain dicts, status patches, Secrets read by name."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from typing import Any

from walkme_dic.api.common import StatusModel
from walkme_dic.kube import SECRETS, ApiError, KubeClient


def plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, plain-dict copy of a kopf Body or an API answer (safe to keep), without metadata.managedFields:
    the apiserver's record of who set which field, which the operator never reads, is a third of an
    Integration's size and, kept twice per Integration (index and last write), was ~40 MB of the operator's
    memory at 2,000 Integrations."""
    return copy.deepcopy(_kept(body))


def packed(body: Mapping[str, Any]) -> str:
    """What an index keeps of a whole object: compact JSON of :func:`plain`, decoded when a reconcile reads it.

    As dicts, the Integrations of bench/operator_scale.py took ~9 KB each in the index after their run (4.6 MB
    at 500: the strings, and a dict per nested field); as JSON ~2-3 KB. Encoding one takes a third of the time
    of the deep copy it replaces (on every watch event); a reconcile decodes it again."""
    return json.dumps(_kept(body), separators=(",", ":"))


def _kept(body: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: body[k] for k in ("apiVersion", "kind", "spec", "status") if k in body}
    if "metadata" in body:
        kept["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return kept


def status_patch(old: StatusModel, new: StatusModel) -> dict[str, Any]:
    """A merge patch turning status ``old`` into ``new``: the whole of ``new``, and null for each field ``old``
    holds that ``new`` does not (set to None), so that the API server removes it."""
    before, after = old.to_wire(), new.to_wire()
    patch: dict[str, Any] = {k: None for k in before if k not in after}
    patch.update(after)
    return {"status": patch}


async def get_secret(client: KubeClient, namespace: str, name: str, *, metadata_only: bool = False,
                      ) -> dict[str, Any] | None:
    """The Secret (or only its metadata), None when it does not exist; other API errors raise."""
    try:
        if metadata_only:
            return await client.get_metadata(SECRETS, namespace, name)
        return await client.get(SECRETS, namespace, name)
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's decoded data (stringData included)."""
    data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data
