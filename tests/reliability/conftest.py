"""reliability tier: like e2e, the node agent runs the real `walkme-dic sync` for every Job."""

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import node
from tests.fakes.faultproxy import FaultProxy, running_proxy
from tests.reliability.test_directions import stores

__all__ = ["node", "stores"]


@pytest.fixture
def s3_proxy(moto_server: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of moto's S3 server; it also records every request it saw."""
    with running_proxy(moto_server) as proxy:
        yield proxy
