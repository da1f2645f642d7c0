"""e2e tier: the node agent runs the real `walkme-dic sync` for every Job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.cluster import start_node
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.node_agent import NodeAgent


@pytest.fixture
async def node(cluster: Cluster, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    agent = await start_node(cluster.control_plane, tmp_path / "node", extra_env={"AWS_EC2_METADATA_DISABLED": "true"})
    try:
        yield agent
    finally:
        await agent.stop()
