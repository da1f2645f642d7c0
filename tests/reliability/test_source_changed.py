"""A file replaced while a run reads it: nothing is sent and the run fails with reason SourceChanged — through
the real engine, the file in moto's S3 behind a proxy that holds the read while the test replaces the object
(issue 21: it was PermanentError "PreconditionFailed")."""

from __future__ import annotations

import threading
import time

import pytest

from tests.fakes.faultproxy import FaultProxy
from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_TOKEN
from tests.reliability.bad_inputs.test_bad_inputs import CREDENTIALS
from tests.reliability.test_inbound_accounting import request, users_csv
from walkme_dic.api.run import SyncResult
from walkme_dic.sync.engine import run_sync

ROWS = [(f"u{row}", "gold", "2024-01-01") for row in range(1, 150_001)]  # ~3 MB: several reads


def run_while_replaced(proxy: FaultProxy, moto: str, bucket: str, walkme: FakeWalkMe, gate: threading.Event,
                       ) -> SyncResult:
    """Start the run; once the proxy holds its GET, replace the object, release the GET, and wait for the run."""
    client = s3_client(moto)
    client.put_object(Bucket=bucket, Key="users.csv", Body=users_csv(ROWS))
    results: list[SyncResult] = []
    runner = threading.Thread(target=lambda: results.append(run_sync(request(proxy.url, bucket, walkme),
                                                                     CREDENTIALS)))
    runner.start()
    deadline = time.monotonic() + 30
    while not proxy.holding and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.holding, "the run's GET never reached the proxy"
    client.put_object(Bucket=bucket, Key="users.csv", Body=users_csv([("u9", "silver", "2024-02-01")]))
    gate.set()
    runner.join(60)
    return results[0]


@pytest.mark.parametrize("when", ["before the first byte", "while a cut read resumes"])
def test_a_file_replaced_while_read_is_source_changed_and_nothing_is_sent(
        s3_proxy: FaultProxy, moto_server: str, bucket: str, walkme: FakeWalkMe, when: str) -> None:
    if when == "while a cut read resumes":
        s3_proxy.cut("GET", "/users.csv$", after_bytes=1024 * 1024)
    gate = s3_proxy.hold("GET", "/users.csv$", times=1)
    result = run_while_replaced(s3_proxy, moto_server, bucket, walkme, gate)
    assert (result.result, result.reason) == ("Failed", "SourceChanged"), result
    assert "users.csv changed while it was being read (replaced or deleted: its ETag is no longer" in result.message
    assert "PreconditionFailed" not in result.message and not result.retryable
    assert walkme.requests["/public/v1/user/data"] == 0 and walkme.users(WALKME_TOKEN) == {}
    assert result.source_fingerprint is None, "the next run imports the new version"
