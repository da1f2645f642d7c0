"""Operator tier: kopf runs for real against the dev cluster; the kubelet runs Jobs as subprocesses."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.kubelet import Kubelet

FAKE_SYNC = Path(__file__).with_name("fake_sync.py")


@pytest.fixture
def sync_plans(tmp_path: Path) -> Path:
    """Directory where a test says how the stand-in sync of each Integration behaves."""
    directory = tmp_path / "sync-plans"
    directory.mkdir()
    return directory


@pytest.fixture
async def kubelet(cluster: DevCluster, sync_plans: Path) -> AsyncIterator[Kubelet]:
    def resolve(argv: list[str]) -> list[str]:
        return [sys.executable, str(FAKE_SYNC), *argv[2:]] if argv[:2] == ["walkme-dic", "sync"] else argv

    async with Kubelet(cluster.client, command_resolver=resolve, extra_env={"FAKE_SYNC_DIR": str(sync_plans)},
                       relist_seconds=0.1) as runner:
        yield runner
