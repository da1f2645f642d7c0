"""e2e tier: the dev kubelet runs the real `walkme-dic sync` for every Job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.kubelet import Kubelet


@pytest.fixture
async def kubelet(cluster: DevCluster) -> AsyncIterator[Kubelet]:
    async with Kubelet(cluster.client, relist_seconds=0.1, extra_env={"AWS_EC2_METADATA_DISABLED": "true"}) as runner:
        yield runner
