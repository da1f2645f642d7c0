"""GcsStore against gcp-storage-emulator on 127.0.0.1 (the GCS JSON API) and a fake Google token endpoint."""

from __future__ import annotations

import gc
import json
import os

import pytest
from google.api_core.retry import Retry
from google.cloud.storage.retry import DEFAULT_RETRY

from tests.fakes.google_token import FakeGoogleToken
from tests.fixtures.gcs import gcs_client, service_account_key
from walkme_dic.api.connection import GcsProvider
from walkme_dic.connectors import gcs as gcs_module
from walkme_dic.connectors.gcs import GcsStore
from walkme_dic.errors import AuthenticationError, NotFoundError, PermanentError

MIB = 1024 * 1024
QUICK = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05).with_timeout(2)


def store(endpoint: str, bucket: str, *, auth: dict | None = None, secret: dict[str, str] | None = None,
          retry: Retry = QUICK) -> GcsStore:
    spec = GcsProvider.model_validate({"bucket": bucket, "prefix": "dic/", "endpointUrl": endpoint,
                                       "auth": auth if auth is not None else {"anonymous": True}})
    return GcsStore(spec, secret or {}, chunk_size=MIB, retry=retry)


def names(endpoint: str, bucket: str) -> list[str]:
    return sorted(b.name for b in gcs_client(endpoint).list_blobs(bucket))


def test_probe_names_both_directions_and_a_missing_bucket(gcs_emulator: str, gcs_bucket: str) -> None:
    message = store(gcs_emulator, gcs_bucket).probe().message
    assert gcs_bucket in message and "read (Inbound) and write (Outbound)" in message
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist"):
        store(gcs_emulator, "no-such-bucket").probe()
    assert names(gcs_emulator, gcs_bucket) == [], "the probe writes nothing"


def test_service_account_key_gets_a_token_signed_with_its_private_key(
        gcs_emulator: str, gcs_bucket: str, google_token: FakeGoogleToken) -> None:
    email = f"dic-{os.urandom(3).hex()}@walkme-test.iam.gserviceaccount.com"
    key = service_account_key(google_token, email)
    auth = {"secretRef": {"name": "gcp", "key": "key.json"}}
    store(gcs_emulator, gcs_bucket, auth=auth, secret={"key.json": key}).probe()
    assert email in google_token.issued


def test_a_key_google_does_not_know_is_an_authentication_error_without_key_material(
        gcs_emulator: str, gcs_bucket: str, google_token: FakeGoogleToken) -> None:
    key = service_account_key(google_token, known=False)
    auth = {"secretRef": {"name": "gcp", "key": "key.json"}}
    with pytest.raises(AuthenticationError) as error:
        store(gcs_emulator, gcs_bucket, auth=auth, secret={"key.json": key}).probe()
    private = json.loads(key)["private_key"]
    assert "'key.json'" in error.value.message and private[40:80] not in error.value.message


@pytest.mark.parametrize("value", ["", "not json", '{"type": "service_account"}', "[1, 2]",
                                   '{"private_key": "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----",'
                                   ' "client_email": "a@b", "token_uri": "https://x"}'])
def test_a_secret_that_is_not_a_service_account_key_is_named(gcs_emulator: str, value: str) -> None:
    with pytest.raises(PermanentError, match=r"'key\.json' is not a service-account JSON key") as error:
        store(gcs_emulator, "b-x", auth={"secretRef": {"name": "gcp", "key": "key.json"}}, secret={"key.json": value})
    assert error.value.reason == "InvalidCredentials"
    assert "AAAA" not in error.value.message


def test_no_secret_and_no_ambient_credentials_says_what_to_set(gcs_emulator: str, tmp_path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(AuthenticationError, match=r"gcs.auth.secretRef .* workload identity"):
        store(gcs_emulator, "b-x", auth={})


def test_anonymous_is_only_for_emulators() -> None:
    with pytest.raises(ValueError, match="only allowed with endpointUrl"):
        GcsProvider.model_validate({"bucket": "b-x", "auth": {"anonymous": True}})
    with pytest.raises(ValueError, match="secretRef or anonymous"):
        GcsProvider.model_validate({"bucket": "b-x", "endpointUrl": "http://e",
                                    "auth": {"anonymous": True, "secretRef": {"name": "a", "key": "k"}}})


def test_streaming_read_is_pinned_to_the_generation(gcs_emulator: str, gcs_bucket: str) -> None:
    payload = os.urandom(2 * gcs_module.READ_CHUNK + 3)
    blob = gcs_client(gcs_emulator).bucket(gcs_bucket).blob("dic/in.bin")
    blob.upload_from_string(payload)
    blob.reload()
    gcs_store = store(gcs_emulator, gcs_bucket)
    info = gcs_store.stat("in.bin")
    assert (info.size, info.fingerprint) == (len(payload), str(blob.generation))
    with gcs_store.open_read("in.bin") as stream:
        assert b"".join(iter(lambda: stream.read(700_000), b"")) == payload


def test_an_object_replaced_mid_read_fails_instead_of_mixing(gcs_emulator: str, gcs_bucket: str) -> None:
    blob = gcs_client(gcs_emulator).bucket(gcs_bucket).blob("dic/in.bin")
    blob.upload_from_string(b"a" * (gcs_module.READ_CHUNK + 10))
    with store(gcs_emulator, gcs_bucket).open_read("in.bin") as stream:
        first = stream.read(1000)
        blob.upload_from_string(b"b" * (gcs_module.READ_CHUNK + 10))
        with pytest.raises(PermanentError, match="changed while it was being read") as error:
            stream.read()
    assert first == b"a" * 1000 and error.value.reason == "SourceChanged"


def test_missing_object_is_not_found(gcs_emulator: str, gcs_bucket: str) -> None:
    with pytest.raises(NotFoundError, match=r"gs://.*/dic/nothing.csv: the object does not exist"):
        store(gcs_emulator, gcs_bucket).open_read("nothing.csv")


def test_write_is_invisible_until_commit(gcs_emulator: str, gcs_bucket: str) -> None:
    payload = os.urandom(3 * MIB + 7)
    writer = store(gcs_emulator, gcs_bucket).open_write("out/export.csv")
    writer.write(payload[:MIB + 1])
    writer.write(payload[MIB + 1:])
    assert names(gcs_emulator, gcs_bucket) == [], "chunks were sent, nothing is visible yet"
    info = writer.commit()
    assert info.size == len(payload) and info.fingerprint
    assert gcs_client(gcs_emulator).bucket(gcs_bucket).blob("dic/out/export.csv").download_as_bytes() == payload


def test_empty_write_commits_an_empty_object(gcs_emulator: str, gcs_bucket: str) -> None:
    writer = store(gcs_emulator, gcs_bucket).open_write("empty.csv")
    assert writer.commit().size == 0
    assert names(gcs_emulator, gcs_bucket) == ["dic/empty.csv"]


def test_abort_leaves_nothing_even_when_the_writer_is_collected(gcs_emulator: str, gcs_bucket: str) -> None:
    writer = store(gcs_emulator, gcs_bucket).open_write("out/partial.csv")
    writer.write(os.urandom(2 * MIB + 10))
    writer.abort()
    del writer
    gc.collect()
    assert names(gcs_emulator, gcs_bucket) == []
