"""Kubernetes Events for our objects, posted with our client (works from handlers and the resync loop).

Why not ``kopf.event()``: kopf posts Events from a queue it binds to each object's processing task
(``posting.event_queue_var``, set in kopf/_core/reactor/processing.py "till the end of this object's
task"). The resync pass and the backoff's retries run outside those tasks, where ``kopf.event()`` raises
LookupError; one writer for every Event keeps them alike (source, reporting component, message limit).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from walkme_dic.kube import EVENTS, ApiError, KubeClient

log = logging.getLogger("walkme_dic.events")
COMPONENT = "walkme-dic"


def event_body(obj: dict[str, Any], type_: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name'][:200]}.", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid"),
                           "resourceVersion": meta.get("resourceVersion")},
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def emit(client: KubeClient, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event; a failure to post is logged, never raised (Events are best effort, as in Kubernetes)."""
    body = event_body(obj, type_, reason, message, datetime.now(UTC))
    try:
        await client.create(EVENTS, body["metadata"]["namespace"], body)
    except (ApiError, OSError) as error:
        log.warning("could not post Event %s for %s: %s", reason, obj["metadata"]["name"], error)
