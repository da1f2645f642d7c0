"""AzureBlobStore against Azurite on 127.0.0.1 (the real Azure Blob REST API)."""

from __future__ import annotations

import os
import uuid

import pytest
from azure.storage.blob import BlobServiceClient

from tests.fixtures.azurite import Azurite
from walkme_dic.api.connection import AzureBlobProvider
from walkme_dic.connectors.azure_blob import AzureBlobStore
from walkme_dic.errors import AuthenticationError, DicError, NotFoundError

MIB = 1024 * 1024


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"c{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def store(azurite: Azurite, container: str, secret: str | None = None) -> AzureBlobStore:
    spec = AzureBlobProvider.model_validate({"accountUrl": azurite.account_url, "container": container,
                                             "prefix": "dic/", "auth": {"secretRef": {"name": "az", "key": "cs"}}})
    return AzureBlobStore(spec, {"cs": secret or azurite.connection_string}, block_size=MIB, retry_total=1,
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
