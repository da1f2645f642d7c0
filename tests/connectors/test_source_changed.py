"""A file replaced or removed while a run reads it fails the read with reason SourceChanged on every store —
never a PermanentError named after the store's status code ("PreconditionFailed", "ConditionNotMet"), never
two versions' bytes mixed (issue 21). Real servers: moto (S3), Azurite, gcp-storage-emulator, OpenSSH sshd."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.connectors.test_azure_blob import store as azure_store
from tests.connectors.test_gcs import store as gcs_store
from tests.connectors.test_s3 import store as s3_store
from tests.connectors.test_sftp import store as sftp_store
from tests.fakes.faultproxy import running_proxy
from tests.fixtures.azurite import Azurite
from tests.fixtures.gcs import gcs_client
from tests.fixtures.servers import s3_client
from tests.fixtures.sshd import Sshd
from walkme_dic.connectors import azure_blob, gcs
from walkme_dic.errors import PermanentError

MIB = 1024 * 1024


def changed(read: object) -> PermanentError:
    """The error ``read()`` raises, checked to be SourceChanged."""
    with pytest.raises(PermanentError, match="changed while it was being read") as error:
        read()  # type: ignore[operator]
    assert error.value.reason == "SourceChanged", error.value
    return error.value


# ---- S3 (moto) ------------------------------------------------------------------------------------------------

def test_s3_object_replaced_before_the_first_read(moto_server: str, bucket: str) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="dic/in.csv", Body=b"id\nu1\n")
    with s3_store(moto_server, bucket).open_read("in.csv") as stream:  # stat now, GET (If-Match) at the first read
        s3_client(moto_server).put_object(Bucket=bucket, Key="dic/in.csv", Body=b"id\nu2\n")
        error = changed(stream.read)
    assert "its ETag is no longer" in error.message and "PreconditionFailed" not in error.message


def test_s3_object_deleted_before_the_first_read(moto_server: str, bucket: str) -> None:
    s3_client(moto_server).put_object(Bucket=bucket, Key="dic/in.csv", Body=b"id\nu1\n")
    with s3_store(moto_server, bucket).open_read("in.csv") as stream:
        s3_client(moto_server).delete_object(Bucket=bucket, Key="dic/in.csv")
        assert "it was deleted" in changed(stream.read).message


def test_s3_object_replaced_while_a_dropped_read_resumes(moto_server: str, bucket: str) -> None:
    """The ranged GET that resumes after a cut connection asks for the same ETag: a new version fails it."""
    client = s3_client(moto_server)
    client.put_object(Bucket=bucket, Key="dic/in.bin", Body=b"a" * (3 * MIB))
    with running_proxy(moto_server) as proxy:
        proxy.cut("GET", "/dic/in.bin", after_bytes=MIB)
        with s3_store(proxy.url, bucket).open_read("in.bin") as stream:
            first = stream.read(MIB // 2)
            client.put_object(Bucket=bucket, Key="dic/in.bin", Body=b"b" * (3 * MIB))
            changed(stream.read)
    assert first == b"a" * (MIB // 2)


# ---- Azure Blob (Azurite) ---------------------------------------------------------------------------------------

@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"c{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(name)
    return name


def blob(azurite: Azurite, container: str, name: str):  # type: ignore[no-untyped-def]
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)


def test_azure_blob_replaced_between_two_chunks(azurite: Azurite, container: str) -> None:
    target = blob(azurite, container, "dic/in.bin")
    target.upload_blob(b"a" * (azure_blob.READ_CHUNK + 10))
    with azure_store(azurite, container).open_read("in.bin") as stream:
        first = stream.read(1000)  # the first chunk is read: the next one is a new ranged GET
        target.upload_blob(b"b" * (azure_blob.READ_CHUNK + 10), overwrite=True)
        error = changed(stream.read)
    assert first == b"a" * 1000
    assert "its ETag is no longer" in error.message and "ConditionNotMet" not in error.message


def test_azure_blob_deleted_between_two_chunks(azurite: Azurite, container: str) -> None:
    target = blob(azurite, container, "dic/in.bin")
    target.upload_blob(b"a" * (azure_blob.READ_CHUNK + 10))
    with azure_store(azurite, container).open_read("in.bin") as stream:
        stream.read(1000)
        target.delete_blob()
        assert "deleted" in changed(stream.read).message  # Azurite: 412 (If-Match), Azure: 404


# ---- GCS (gcp-storage-emulator) ---------------------------------------------------------------------------------

def test_gcs_object_deleted_between_two_chunks(gcs_emulator: str, gcs_bucket: str) -> None:
    target = gcs_client(gcs_emulator).bucket(gcs_bucket).blob("dic/in.bin")
    target.upload_from_string(b"a" * (gcs.READ_CHUNK + 10))
    with gcs_store(gcs_emulator, gcs_bucket).open_read("in.bin") as stream:
        stream.read(1000)
        target.delete()
        assert "generation" in changed(stream.read).message


# ---- SFTP (OpenSSH) ---------------------------------------------------------------------------------------------

def test_sftp_file_replaced_before_the_first_read(sshd: Sshd) -> None:
    folder: Path = sshd.folder()
    (folder / "in.csv").write_bytes(b"id\nu1\n")
    with sftp_store(sshd, folder).open_read("in.csv") as stream:  # stat now, the file is opened at the first read
        replacement = folder / "in.csv.new"
        replacement.write_bytes(b"id\nu1\nu2\n")
        os.replace(replacement, folder / "in.csv")
        assert "size and mtime were" in changed(stream.read).message


def test_sftp_file_that_shrinks_while_read_ends_as_source_changed(sshd: Sshd) -> None:
    folder: Path = sshd.folder()
    (folder / "in.bin").write_bytes(b"a" * (4 * MIB))
    with sftp_store(sshd, folder).open_read("in.bin") as stream:
        stream.read(1000)
        with (folder / "in.bin").open("r+b") as same_file:  # the same inode, cut short (a writer truncating it)
            same_file.truncate(MIB)
        assert "it ended at byte" in changed(stream.read).message
