"""AzureBlobStore against Azurite on 127.0.0.1 (the real Azure Blob REST API)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from tests.connectors.uploads import (
    abort_waits_for_parts_on_the_wire,
    numbered_parts,
    write_until_it_fails,
    writes_stop_at_the_bound,
)
from tests.fakes.faultproxy import FaultProxy, running_proxy
from tests.fixtures.azurite import Azurite
from walkme_dic.api.connection import AzureBlobProvider
from walkme_dic.connectors.azure_blob import AzureBlobStore
from walkme_dic.errors import AuthenticationError, DicError, NotFoundError, TransientError

MIB = 1024 * 1024


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"c{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def store(azurite: Azurite, container: str, secret: str | None = None, block_size: int = MIB) -> AzureBlobStore:
    spec = AzureBlobProvider.model_validate({"accountUrl": azurite.account_url, "container": container,
                                             "prefix": "dic/", "auth": {"secretRef": {"name": "az", "key": "cs"}}})
    return AzureBlobStore(spec, {"cs": secret or azurite.connection_string}, block_size=block_size, retry_total=1,
                          retry_backoff_factor=0.01)


def blob_names(azurite: Azurite, container: str) -> list[str]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return [b.name for b in client.list_blobs()]


def test_probe_and_missing_container(azurite: Azurite, container: str) -> None:
    assert container in store(azurite, container).probe().message
    with pytest.raises(NotFoundError, match="nosuchcontainer"):
        store(azurite, "nosuchcontainer").probe()


def test_wrong_key_is_an_authentication_error_without_the_key(azurite: Azurite, container: str) -> None:
    wrong = azurite.connection_string.replace("Eby8", "AAAA")
    with pytest.raises(AuthenticationError) as error:
        store(azurite, container, secret=wrong).probe()
    assert "AAAA" not in str(error.value) and "'cs'" in str(error.value)


def test_streaming_read_and_etag(azurite: Azurite, container: str) -> None:
    payload = os.urandom(5 * MIB + 3)
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    client.upload_blob("dic/in.bin", payload)
    blob_store = store(azurite, container)
    assert blob_store.stat("in.bin").size == len(payload)
    with blob_store.open_read("in.bin") as stream:
        chunks = []
        while chunk := stream.read(100_000):
            chunks.append(chunk)
    assert b"".join(chunks) == payload


def test_block_write_is_invisible_until_commit(azurite: Azurite, container: str) -> None:
    payload = os.urandom(3 * MIB + MIB // 2)
    writer = store(azurite, container).open_write("out/export.csv")
    for start in range(0, len(payload), 700_000):
        writer.write(payload[start:start + 700_000])
    assert blob_names(azurite, container) == []
    writer.commit()
    assert blob_names(azurite, container) == ["dic/out/export.csv"]
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    assert client.download_blob("dic/out/export.csv").readall() == payload


def test_abort_leaves_nothing(azurite: Azurite, container: str) -> None:
    writer = store(azurite, container).open_write("out/partial.csv")
    writer.write(os.urandom(2 * MIB))
    writer.abort()
    assert blob_names(azurite, container) == []


def test_failure_mid_write_is_an_error_and_nothing_is_visible(azurite: Azurite, container: str) -> None:
    writer = store(azurite, container).open_write("out/broken.csv")
    writer.write(os.urandom(MIB + 10))
    BlobServiceClient.from_connection_string(azurite.connection_string).delete_container(container)
    with pytest.raises(DicError):
        writer.write(os.urandom(MIB))
        writer.commit()
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    assert blob_names(azurite, container) == []


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with running_proxy(azurite.account_url.rsplit("/", 1)[0]) as running:
        yield running


def proxied(azurite: Azurite, proxy: FaultProxy, container: str, block_size: int) -> AzureBlobStore:
    """The store talking to Azurite through ``proxy`` (its connection string names the proxy's endpoint)."""
    secret = azurite.connection_string.replace(azurite.account_url.rsplit("/", 1)[0], proxy.url)
    return store(azurite, container, secret=secret, block_size=block_size)


def read_blob(azurite: Azurite, container: str, name: str) -> bytes:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return client.download_blob(name).readall()


def put_blob(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    client.upload_blob(name, data)


def test_many_small_blocks_keep_their_order_when_a_later_block_finishes_first(
        azurite: Azurite, proxy: FaultProxy, container: str) -> None:
    gate = proxy.hold("PUT", rf"/{container}/dic/out\.csv$", 1, query="comp=block&")
    threading.Timer(1.0, gate.set).start()
    parts = numbered_parts(300, 1024)
    writer = proxied(azurite, proxy, container, 1024).open_write("out.csv")
    for part in parts:
        writer.write(part)
    writer.write(b"tail\n")
    writer.commit()
    assert read_blob(azurite, container, "dic/out.csv") == b"".join(parts) + b"tail\n"
    assert proxy.injected == 1, "one block was held while the others went through"


def test_at_most_two_blocks_upload_at_once_and_write_waits_for_a_slot(azurite: Azurite, proxy: FaultProxy,
                                                                     container: str) -> None:
    gate = proxy.hold("PUT", rf"/{container}/dic/out\.csv$", 1000, query="comp=block&")
    parts = numbered_parts(20, 1024)
    writer = proxied(azurite, proxy, container, 1024).open_write("out.csv")
    writes_stop_at_the_bound(writer, proxy, gate, parts)
    writer.commit()
    assert read_blob(azurite, container, "dic/out.csv") == b"".join(parts)


def test_abort_waits_for_blocks_in_flight_and_leaves_the_previous_blob(azurite: Azurite, proxy: FaultProxy,
                                                                       container: str) -> None:
    put_blob(azurite, container, "dic/out.csv", b"previous\n")
    gate = proxy.hold("PUT", rf"/{container}/dic/out\.csv$", 1000, query="comp=block&")
    writer = proxied(azurite, proxy, container, 1024).open_write("out.csv")
    abort_waits_for_parts_on_the_wire(writer, proxy, gate, numbered_parts(3, 1024))
    assert blob_names(azurite, container) == ["dic/out.csv"]
    assert read_blob(azurite, container, "dic/out.csv") == b"previous\n"


AUTH_FAILED = ("<?xml version='1.0' encoding='utf-8'?><Error><Code>AuthenticationFailed</Code>"
               "<Message>x</Message></Error>")


def test_a_block_failing_in_the_background_fails_the_next_write(azurite: Azurite, proxy: FaultProxy,
                                                                container: str) -> None:
    put_blob(azurite, container, "dic/out.csv", b"previous\n")
    proxy.fail("PUT", rf"/{container}/dic/out\.csv$", 1000, 403, AUTH_FAILED, query="comp=block&",
               headers={"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"})
    blob_store = proxied(azurite, proxy, container, 1024)
    writer = blob_store.open_write("out.csv")
    writer.write(numbered_parts(1, 1024)[0])
    with pytest.raises(AuthenticationError) as failed:
        write_until_it_fails(writer)
    assert str(failed.value) == (f"Azure refused the credentials for container {container!r} while uploading "
                                 f"{blob_store.describe('out.csv')}; check the Secret key 'cs'")
    writer.abort()
    assert read_blob(azurite, container, "dic/out.csv") == b"previous\n"


def test_the_last_block_failing_fails_commit_and_publishes_nothing(azurite: Azurite, proxy: FaultProxy,
                                                                   container: str) -> None:
    proxy.fail("PUT", rf"/{container}/dic/out\.csv$", 1000, 500, query="comp=block&",
               headers={"x-ms-error-code": "InternalError"})
    writer = proxied(azurite, proxy, container, 1024).open_write("out.csv")
    writer.write(b"a,b\n1,2\n")
    with pytest.raises(TransientError, match=r"^Azure kept failing while uploading http://.* \(retries exhausted\)$"):
        writer.commit()
    assert blob_names(azurite, container) == []
