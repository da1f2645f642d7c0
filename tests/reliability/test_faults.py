"""Fault matrix at the protocol level: injected throttling, 5xx and cut connections through a real proxy
(S3 via moto, Azure Blob via Azurite, GCS via gcp-storage-emulator; SFTP via a TCP relay in front of OpenSSH)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from google.cloud.storage.retry import DEFAULT_RETRY as GCS_RETRY

from tests.fakes.faultproxy import FaultProxy, running_proxy
from tests.fakes.tcpproxy import TcpCutProxy
from tests.fixtures.azurite import Azurite
from tests.fixtures.gcs import gcs_client
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import Sshd
from walkme_dic.api.connection import AzureBlobProvider, GcsProvider, S3Provider, SftpProvider
from walkme_dic.connectors.azure_blob import AzureBlobStore
from walkme_dic.connectors.gcs import GcsStore
from walkme_dic.connectors.s3 import MIN_PART_SIZE, S3Store
from walkme_dic.connectors.sftp import SftpStore
from walkme_dic.errors import PermanentError, TransientError

SLOW_DOWN = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
             "<Message>Please reduce your request rate.</Message></Error>")
SERVER_BUSY = ("<?xml version='1.0' encoding='utf-8'?><Error><Code>ServerBusy</Code>"
               "<Message>The server is currently unable to receive requests.</Message></Error>")


def s3_store(proxy: FaultProxy, bucket: str, attempts: int = 4) -> S3Store:
    spec = S3Provider(bucket=bucket, region="us-east-1", endpoint_url=proxy.url)
    return S3Store(spec, {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, part_size=MIN_PART_SIZE,
                   max_attempts=attempts)


def no_leftovers(moto: str, bucket: str) -> bool:
    client = s3_client(moto)
    return not client.list_objects_v2(Bucket=bucket).get("Contents") and \
        not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_s3_slowdown_during_multipart_is_retried(s3_proxy: FaultProxy, moto_server: str, bucket: str) -> None:
    s3_proxy.fail("PUT", rf"/{bucket}/out.csv$", 2, 503, SLOW_DOWN, query="partNumber=")
    payload = os.urandom(2 * MIN_PART_SIZE + 100)
    writer = s3_store(s3_proxy, bucket).open_write("out.csv")
    writer.write(payload)
    writer.commit()
    assert s3_proxy.injected == 2
    assert s3_client(moto_server).get_object(Bucket=bucket, Key="out.csv")["Body"].read() == payload


def test_s3_500_at_completion_leaves_nothing(s3_proxy: FaultProxy, moto_server: str, bucket: str) -> None:
    s3_proxy.fail("POST", rf"/{bucket}/out.csv$", 100, 500, query="uploadId=")
    writer = s3_store(s3_proxy, bucket, attempts=2).open_write("out.csv")
    writer.write(os.urandom(MIN_PART_SIZE + 10))
    with pytest.raises(TransientError, match="retries exhausted"):
        writer.commit()
    assert no_leftovers(moto_server, bucket)


def test_s3_connection_cut_mid_download_resumes(s3_proxy: FaultProxy, moto_server: str, bucket: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    s3_client(moto_server).put_object(Bucket=bucket, Key="in.bin", Body=payload)
    s3_proxy.cut("GET", rf"/{bucket}/in.bin$", after_bytes=700_000, times=2)
    with s3_store(s3_proxy, bucket).open_read("in.bin") as stream:
        assert stream.read() == payload
    gets = [s for s in s3_proxy.seen if s[0] == "GET" and s[1].endswith("in.bin")]
    assert len(gets) >= 3, "the reader resumed with Range requests"


@pytest.fixture
def azure_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with running_proxy(azurite.account_url.rsplit("/", 1)[0]) as proxy:
        yield proxy


def azure_store(azurite: Azurite, proxy: FaultProxy, container: str) -> AzureBlobStore:
    connection_string = azurite.connection_string.replace(azurite.account_url.rsplit("/", 1)[0], proxy.url)
    spec = AzureBlobProvider.model_validate({"accountUrl": proxy.url, "container": container,
                                             "auth": {"secretRef": {"name": "a", "key": "cs"}}})
    return AzureBlobStore(spec, {"cs": connection_string}, block_size=1024 * 1024, retry_total=3,
                          retry_backoff_factor=0.01)


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"faults{os.urandom(4).hex()}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def blobs(azurite: Azurite, container: str) -> list[str]:
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    return [b.name for b in client.list_blobs()]


def test_azure_503_during_block_staging_is_retried(azurite: Azurite, azure_proxy: FaultProxy, container: str) -> None:
    azure_proxy.fail("PUT", rf"/{container}/out.csv$", 2, 503, SERVER_BUSY, query="comp=block&",
                      headers={"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"})
    payload = os.urandom(2 * 1024 * 1024 + 5)
    writer = azure_store(azurite, azure_proxy, container).open_write("out.csv")
    writer.write(payload)
    writer.commit()
    assert azure_proxy.injected == 2
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    assert client.download_blob("out.csv").readall() == payload


def test_azure_503_at_commit_leaves_nothing_visible(azurite: Azurite, azure_proxy: FaultProxy, container: str) -> None:
    azure_proxy.fail("PUT", rf"/{container}/out.csv$", 100, 503, SERVER_BUSY, query="comp=blocklist",
                      headers={"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"})
    writer = azure_store(azurite, azure_proxy, container).open_write("out.csv")
    writer.write(os.urandom(1024 * 1024 + 5))
    with pytest.raises(TransientError):
        writer.commit()
    assert blobs(azurite, container) == []


@pytest.fixture
def gcs_proxy(gcs_emulator: str) -> Iterator[FaultProxy]:
    with running_proxy(gcs_emulator) as proxy:
        yield proxy


def gcs_store(proxy: FaultProxy, bucket: str) -> GcsStore:
    spec = GcsProvider.model_validate({"bucket": bucket, "endpointUrl": proxy.url, "auth": {"anonymous": True}})
    return GcsStore(spec, {}, chunk_size=1024 * 1024,
                    retry=GCS_RETRY.with_delay(initial=0.01, maximum=0.05).with_timeout(3))


def gcs_names(emulator: str, bucket: str) -> list[str]:
    return [b.name for b in gcs_client(emulator).list_blobs(bucket)]


def test_gcs_connection_cut_mid_download_resumes(gcs_proxy: FaultProxy, gcs_emulator: str, gcs_bucket: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    gcs_client(gcs_emulator).bucket(gcs_bucket).blob("in.bin").upload_from_string(payload)
    gcs_proxy.cut("GET", rf"/b/{gcs_bucket}/o/in.bin$", after_bytes=700_000, times=2, query="alt=media")
    with gcs_store(gcs_proxy, gcs_bucket).open_read("in.bin") as stream:
        assert stream.read() == payload
    assert gcs_proxy.injected == 2, "both cuts were hit, and the reader resumed after each"


def test_gcs_503_on_an_upload_chunk_is_retried(gcs_proxy: FaultProxy, gcs_emulator: str, gcs_bucket: str) -> None:
    gcs_proxy.fail("PUT", rf"/b/{gcs_bucket}/o$", 2, 503, query="upload_id=")
    payload = os.urandom(2 * 1024 * 1024 + 5)
    writer = gcs_store(gcs_proxy, gcs_bucket).open_write("out.csv")
    writer.write(payload)
    writer.commit()
    assert gcs_proxy.injected == 2
    assert gcs_client(gcs_emulator).bucket(gcs_bucket).blob("out.csv").download_as_bytes() == payload


def test_gcs_failing_finalize_publishes_nothing(gcs_proxy: FaultProxy, gcs_emulator: str, gcs_bucket: str) -> None:
    writer = gcs_store(gcs_proxy, gcs_bucket).open_write("out.csv")
    writer.write(os.urandom(1024 * 1024 + 5))  # the first chunk goes through
    gcs_proxy.fail("PUT", rf"/b/{gcs_bucket}/o$", 1000, 503, query="upload_id=")
    with pytest.raises(TransientError, match="retries exhausted"):
        writer.commit()
    writer.abort()
    assert gcs_names(gcs_emulator, gcs_bucket) == []


# ---- SFTP: the same cuts on an SSH connection, through a TCP relay in front of the real sshd ------------

@pytest.fixture
def sftp_relay(sshd: Sshd) -> Iterator[TcpCutProxy]:
    relay = TcpCutProxy(sshd.host, sshd.port).start()
    yield relay
    relay.stop()


def sftp_store(sshd: Sshd, relay: TcpCutProxy, folder: Path) -> SftpStore:
    pinned = [line.replace(f"]:{sshd.port} ", f"]:{relay.port} ") for line in sshd.known_hosts.splitlines()]
    spec = SftpProvider.model_validate({"host": sshd.host, "port": relay.port, "username": sshd.username,
                                        "path": str(folder), "hostKeys": pinned,
                                        "auth": {"secretRef": {"name": "sftp"}}})
    return SftpStore(spec, {"privateKey": sshd.keys["ed25519"]}, timeout=5)


def test_sftp_connection_cut_mid_download_resumes(sshd: Sshd, sftp_relay: TcpCutProxy) -> None:
    folder = sshd.folder()
    payload = os.urandom(6 * 1024 * 1024 + 11)
    (folder / "in.bin").write_bytes(payload)
    store = sftp_store(sshd, sftp_relay, folder)
    sftp_relay.cut(after_bytes=2 * 1024 * 1024, times=2)
    with store.open_read("in.bin") as stream:
        assert stream.read() == payload
    assert sftp_relay.cuts_done == 2 and sftp_relay.connections == 3, "two cuts, two reconnects"


def test_sftp_file_changed_across_a_cut_fails_instead_of_mixing(sshd: Sshd, sftp_relay: TcpCutProxy) -> None:
    folder = sshd.folder()
    (folder / "in.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    store = sftp_store(sshd, sftp_relay, folder)
    sftp_relay.cut(after_bytes=3 * 1024 * 1024)
    with store.open_read("in.bin") as stream:
        first = stream.read(1024 * 1024)
        with (folder / "in.bin").open("ab") as grow:
            grow.write(b"a new version")
        with pytest.raises(PermanentError, match="changed while it was being read") as changed:
            while stream.read(1024 * 1024):
                pass
    assert len(first) == 1024 * 1024 and changed.value.reason == "SourceChanged"


def test_sftp_connection_cut_mid_upload_publishes_nothing(sshd: Sshd, sftp_relay: TcpCutProxy) -> None:
    folder = sshd.folder()
    (folder / "out.csv").write_bytes(b"the previous export\n")
    store = sftp_store(sshd, sftp_relay, folder)
    sftp_relay.cut(after_bytes=1024 * 1024, direction="up")  # the first connection only
    writer = store.open_write("out.csv")
    with pytest.raises(TransientError, match="cannot reach"):
        for _ in range(8):
            writer.write(os.urandom(1024 * 1024))
        writer.commit()
    writer.abort()
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv"], "the temporary file was removed"
    assert (folder / "out.csv").read_bytes() == b"the previous export\n", "nothing was published"
