"""Operator tier: kopf runs for real against the dev cluster; the kubelet runs Jobs as subprocesses."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.walkme import WALKME_CLIENT, WALKME_SECRET, WALKME_TOKEN
from tests.operator.helpers import OperatorHandle, connection, secret
from walkme_dic.devcluster.cluster import DevCluster
from walkme_dic.devcluster.kubelet import Kubelet

FAKE_SYNC = Path(__file__).with_name("fake_sync.py")


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with DevCluster() as dev:
        yield dev


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
                       poll_seconds=0.1) as runner:
        yield runner


@pytest.fixture
async def operator(cluster: DevCluster, kubelet: Kubelet) -> AsyncIterator[OperatorHandle]:
    handle = OperatorHandle(cluster)
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture
def backends(moto_server: str, walkme_api: FakeWalkMe) -> dict:
    """Real endpoints the Connections probe: moto's S3 server and the fake WalkMe API."""
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(Bucket=bucket)
    walkme_secret = {"clientId": WALKME_CLIENT, "clientSecret": WALKME_SECRET}
    walkme_spec = {"walkme": {"apiUrl": walkme_api.url, "auth": {"secretRef": {"name": "walkme-api"}}}}
    s3_spec = {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server,
                      "auth": {"secretRef": {"name": "aws"}}}}
    return {
        "walkme_spec": walkme_spec,
        "walkme_secret": walkme_secret,
        "manifests": [
            secret("walkme-api", walkme_secret),
            secret("aws", {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}),
            secret("walkme-token", {"token": WALKME_TOKEN}),
            connection("walkme", walkme_spec),
            connection("lake", s3_spec),
        ],
    }
