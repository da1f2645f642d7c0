"""One Runtime behind every object's memo; our last writes read until the watch shows them; the heap trim."""

from __future__ import annotations

import asyncio
import json
import platform
from typing import Any

import pytest
from kopf._core.reactor.inventory import ResourceMemories

from walkme_dic.controllers import run
from walkme_dic.controllers.common import packed
from walkme_dic.controllers.runtime import OperatorConfig, Runtime
from walkme_dic.jobs.manifest import JobImage
from walkme_dic.kube import ClusterAccess, Login


@pytest.fixture
def runtime() -> Runtime:
    access = ClusterAccess.fixed(Login(server="https://api.example", method="token", token="t"))
    return Runtime.create(OperatorConfig(access=access, image=JobImage("image")))


def integration(resource_version: int, uid: str = "u1", **status: Any) -> dict[str, Any]:
    return {"apiVersion": "integrations.walkme.io/v1alpha1", "kind": "Integration",
            "metadata": {"namespace": "ns", "name": "a", "uid": uid, "resourceVersion": str(resource_version),
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"schedule": "0 3 * * *"}, "status": status}


def test_every_object_kopf_remembers_gets_the_one_runtime_as_its_memo(runtime: Runtime) -> None:
    memories = ResourceMemories()
    first, second = (asyncio.run(memories.recall({"metadata": {"uid": uid}}, memobase=runtime))
                     for uid in ("u1", "u2"))
    assert first.memo is runtime and second.memo is runtime
    first.memo.launched = {("ns", "run-1"): 1.0}  # as run_capacity rebinds it
    assert second.memo.launched == {("ns", "run-1"): 1.0}


def test_our_write_is_read_until_the_watch_delivers_it_then_dropped(runtime: Runtime) -> None:
    runtime.remember("Integration", integration(5, observedGeneration=2))
    assert runtime.freshest("Integration", integration(4))["status"] == {"observedGeneration": 2}
    watched = integration(5, observedGeneration=2)
    assert runtime.freshest("Integration", watched) is watched
    assert runtime.written == {}


def test_a_write_to_an_object_of_the_same_name_that_was_deleted_is_not_read(runtime: Runtime) -> None:
    runtime.remember("Integration", integration(9, uid="old"))
    recreated = integration(3, uid="new")
    assert runtime.freshest("Integration", recreated) is recreated
    assert runtime.written == {}


def test_forget_drops_the_last_write_of_a_deleted_object(runtime: Runtime) -> None:
    runtime.remember("Integration", integration(5))
    runtime.forget("Integration", "ns", "a")
    assert runtime.written == {}


def test_an_index_keeps_the_object_as_compact_json_without_managed_fields() -> None:
    kept = json.loads(packed(integration(5, observedGeneration=2)))
    assert "managedFields" not in kept["metadata"]
    assert kept["status"] == {"observedGeneration": 2} and kept["spec"] == {"schedule": "0 3 * * *"}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_resync_loop_finds_glibc_malloc_trim() -> None:
    assert run.MALLOC_TRIM is not None
    run.release_free_heap()
