"""S3Store against moto's S3 server on 127.0.0.1 (the real S3 HTTP API)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from tests.connectors.uploads import (
    abort_waits_for_parts_on_the_wire,
    numbered_parts,
    write_until_it_fails,
    writes_stop_at_the_bound,
)
from tests.fakes.faultproxy import FaultProxy, running_proxy
from tests.fixtures.servers import s3_client
from walkme_dic.api.connection import S3Provider
from walkme_dic.connectors.s3 import MIN_PART_SIZE, S3Store
from walkme_dic.errors import AuthenticationError, DicError, NotFoundError, TransientError

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret"}


def store(endpoint: str, bucket: str, prefix: str = "dic/") -> S3Store:
    spec = S3Provider(bucket=bucket, region="us-east-1", endpoint_url=endpoint, prefix=prefix)
    return S3Store(spec, CREDENTIALS, part_size=MIN_PART_SIZE, max_attempts=2)


def test_probe_names_the_bucket(moto_server: str, bucket: str) -> None:
    assert bucket in store(moto_server, bucket).probe().message
    with pytest.raises(NotFoundError, match="no-such-bucket-x"):
        store(moto_server, "no-such-bucket-x").probe()


def test_stat_gives_the_etag_and_missing_keys_are_named(moto_server: str, bucket: str) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="dic/users.csv", Body=b"id\n1\n")
    info = store(moto_server, bucket).stat("users.csv")
    assert info.size == 5 and len(info.fingerprint) == 32
    with pytest.raises(NotFoundError, match=r"missing\.csv"):
        store(moto_server, bucket).stat("missing.csv")


def test_streaming_read_returns_every_byte(moto_server: str, bucket: str) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    s3_client(moto_server).put_object(Bucket=bucket, Key="dic/big.bin", Body=payload)
    with store(moto_server, bucket).open_read("big.bin") as stream:
        chunks = []
        while chunk := stream.read(64 * 1024):
            chunks.append(chunk)
    assert b"".join(chunks) == payload


def visible_keys(endpoint: str, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]


def open_uploads(endpoint: str, bucket: str) -> list[dict]:
    return s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_multipart_write_is_invisible_until_commit(moto_server: str, bucket: str) -> None:
    payload = os.urandom(2 * MIN_PART_SIZE + 1234)
    writer = store(moto_server, bucket).open_write("out/export.csv")
    for start in range(0, len(payload), 1024 * 1024):
        writer.write(payload[start:start + 1024 * 1024])
    assert visible_keys(moto_server, bucket) == []
    assert len(open_uploads(moto_server, bucket)) == 1
    info = writer.commit()
    assert info.size == len(payload)
    body = s3_client(moto_server).get_object(Bucket=bucket, Key="dic/out/export.csv")["Body"].read()
    assert body == payload and open_uploads(moto_server, bucket) == []


def test_small_write_is_one_put(moto_server: str, bucket: str) -> None:
    writer = store(moto_server, bucket).open_write("small.csv")
    writer.write(b"a,b\n1,2\n")
    writer.commit()
    assert visible_keys(moto_server, bucket) == ["dic/small.csv"]


def test_abort_leaves_nothing_behind(moto_server: str, bucket: str) -> None:
    writer = store(moto_server, bucket).open_write("out/partial.csv")
    writer.write(os.urandom(MIN_PART_SIZE + 10))
    writer.abort()
    assert visible_keys(moto_server, bucket) == [] and open_uploads(moto_server, bucket) == []


def test_failure_mid_upload_aborts_and_leaves_nothing(moto_server: str, bucket: str) -> None:
    writer = store(moto_server, bucket).open_write("out/broken.csv")
    writer.write(os.urandom(MIN_PART_SIZE + 10))
    upload_id = writer.upload_id
    s3_client(moto_server).abort_multipart_upload(Bucket=bucket, Key="dic/out/broken.csv", UploadId=upload_id)
    with pytest.raises(DicError):
        writer.write(os.urandom(MIN_PART_SIZE))
        writer.commit()
    assert visible_keys(moto_server, bucket) == [] and open_uploads(moto_server, bucket) == []


def test_a_new_write_aborts_uploads_left_by_a_killed_attempt(moto_server: str, bucket: str) -> None:
    client = s3_client(moto_server)
    killed = client.create_multipart_upload(Bucket=bucket, Key="dic/out/run.csv")["UploadId"]
    client.upload_part(Bucket=bucket, Key="dic/out/run.csv", UploadId=killed, PartNumber=1, Body=b"x" * 10)
    other = client.create_multipart_upload(Bucket=bucket, Key="dic/out/run.csv.other")["UploadId"]
    writer = store(moto_server, bucket).open_write("out/run.csv")
    writer.write(b"id\n1\n")
    writer.commit()
    assert [u["UploadId"] for u in open_uploads(moto_server, bucket)] == [other], "only the same key is cleaned"
    assert client.get_object(Bucket=bucket, Key="dic/out/run.csv")["Body"].read() == b"id\n1\n"


@pytest.fixture
def proxy(moto_server: str) -> Iterator[FaultProxy]:
    with running_proxy(moto_server) as running:
        yield running


ACCESS_DENIED = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code><Message>x</Message></Error>"
INTERNAL_ERROR = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code><Message>x</Message></Error>"


def put_previous(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key="dic/out.csv", Body=b"previous\n")


def assert_as_before(endpoint: str, bucket: str) -> None:
    """The object put by put_previous() is untouched and no multipart upload is left."""
    assert open_uploads(endpoint, bucket) == []
    assert s3_client(endpoint).get_object(Bucket=bucket, Key="dic/out.csv")["Body"].read() == b"previous\n"


def test_parts_keep_their_numbers_when_a_later_part_finishes_first(proxy: FaultProxy, moto_server: str,
                                                                  bucket: str) -> None:
    gate = proxy.hold("PUT", rf"/{bucket}/dic/out\.csv$", 1, query="partNumber=1")  # boto3 puts it last
    threading.Timer(1.0, gate.set).start()
    parts = numbered_parts(6, MIN_PART_SIZE)
    writer = store(proxy.url, bucket).open_write("out.csv")
    for part in parts:
        writer.write(part)
    writer.write(b"tail\n")
    writer.commit()
    body = s3_client(moto_server).get_object(Bucket=bucket, Key="dic/out.csv")["Body"].read()
    assert body == b"".join(parts) + b"tail\n"
    assert proxy.injected == 1, "part 1 was held while the others went through"


def test_at_most_two_parts_upload_at_once_and_write_waits_for_a_slot(proxy: FaultProxy, moto_server: str,
                                                                     bucket: str) -> None:
    gate = proxy.hold("PUT", rf"/{bucket}/dic/out\.csv$", 100, query="partNumber=")
    parts = numbered_parts(5, MIN_PART_SIZE)
    writer = store(proxy.url, bucket).open_write("out.csv")
    writes_stop_at_the_bound(writer, proxy, gate, parts)
    writer.commit()
    assert s3_client(moto_server).get_object(Bucket=bucket, Key="dic/out.csv")["Body"].read() == b"".join(parts)


def test_a_writer_opened_with_a_part_size_keeps_one_part_on_the_wire(proxy: FaultProxy, moto_server: str,
                                                                     bucket: str) -> None:
    """What the change detection state is written with (sync/changes.py): small in memory, whatever the store's
    own part size."""
    gate = proxy.hold("PUT", rf"/{bucket}/dic/out\.csv$", 100, query="partNumber=")
    parts = numbered_parts(4, MIN_PART_SIZE)
    writer = S3Store(S3Provider(bucket=bucket, region="us-east-1", endpoint_url=proxy.url, prefix="dic/"),
                     CREDENTIALS, max_attempts=2).open_write("out.csv", part_size=MIN_PART_SIZE)
    writes_stop_at_the_bound(writer, proxy, gate, parts, bound=1)
    writer.commit()
    assert s3_client(moto_server).get_object(Bucket=bucket, Key="dic/out.csv")["Body"].read() == b"".join(parts)


def test_abort_waits_for_parts_in_flight_and_leaves_the_previous_object(proxy: FaultProxy, moto_server: str,
                                                                        bucket: str) -> None:
    put_previous(moto_server, bucket)
    gate = proxy.hold("PUT", rf"/{bucket}/dic/out\.csv$", 100, query="partNumber=")
    writer = store(proxy.url, bucket).open_write("out.csv")
    abort_waits_for_parts_on_the_wire(writer, proxy, gate, numbered_parts(3, MIN_PART_SIZE))
    assert_as_before(moto_server, bucket)


def test_a_part_failing_in_the_background_fails_the_next_write(proxy: FaultProxy, moto_server: str,
                                                               bucket: str) -> None:
    put_previous(moto_server, bucket)
    proxy.fail("PUT", rf"/{bucket}/dic/out\.csv$", 100, 500, INTERNAL_ERROR, query="partNumber=")
    s3 = store(proxy.url, bucket)
    writer = s3.open_write("out.csv")
    writer.write(numbered_parts(1, MIN_PART_SIZE)[0])
    with pytest.raises(TransientError) as failed:
        write_until_it_fails(writer)
    assert str(failed.value) == f"S3 kept failing while uploading {s3.describe('out.csv')}: InternalError " \
                                "(retries exhausted)"
    assert_as_before(moto_server, bucket)


def test_the_last_part_failing_fails_commit_and_publishes_nothing(proxy: FaultProxy, moto_server: str,
                                                                  bucket: str) -> None:
    put_previous(moto_server, bucket)
    proxy.fail("PUT", rf"/{bucket}/dic/out\.csv$", 100, 403, ACCESS_DENIED, query="partNumber=2")
    writer = store(proxy.url, bucket).open_write("out.csv")
    writer.write(numbered_parts(1, MIN_PART_SIZE)[0] + b"rest\n")
    with pytest.raises(AuthenticationError, match=r"^S3 refused the credentials while uploading s3://"):
        writer.commit()
    assert_as_before(moto_server, bucket)
