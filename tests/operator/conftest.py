"""Operator tier: kopf runs for real against the real control plane; the node agent runs each Job's Pod,
with a stand-in for `walkme-dic sync` (tests/operator/fake_sync.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.cluster import start_node
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent

FAKE_SYNC = Path(__file__).with_name("fake_sync.py")


@pytest.fixture
def sync_plans(tmp_path: Path) -> Path:
    """Directory where a test says how the stand-in sync of each Integration behaves."""
    directory = tmp_path / "sync-plans"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    return directory


@pytest.fixture
async def node(cluster: Cluster, sync_plans: Path, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    def resolve(argv: list[str]) -> list[str]:
        return [sys.executable, str(FAKE_SYNC), *argv[2:]] if argv[:2] == ["walkme-dic", "sync"] else argv

    agent = await start_node(cluster.control_plane, tmp_path / "node", resolve,
                             {"FAKE_SYNC_DIR": str(sync_plans)}, shared=(sync_plans,))
    try:
        yield agent
    finally:
        await agent.stop()
