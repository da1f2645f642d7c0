"""What a tenant may use (walkme_dic.tenancy) and where probes run (controllers/probes.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.controllers.probes import ProbePool
from walkme_dic.tenancy import (
    TenancyPolicy,
    ambient_identity,
    ambient_refusal,
    parse_label,
    secret_refusal,
)

SECRET = {"secretRef": {"name": "creds"}}
AMBIENT = [
    {"s3": {"bucket": "acme", "region": "eu-west-1"}},
    {"azureBlob": {"accountUrl": "https://a.blob.core.windows.net", "container": "acme",
                   "auth": {"workloadIdentity": {}}}},
    {"gcs": {"bucket": "acme"}},
]
WITH_CREDENTIALS = [
    {"s3": {"bucket": "acme", "region": "eu-west-1", "auth": SECRET}},
    {"azureBlob": {"accountUrl": "https://a.blob.core.windows.net", "container": "acme",
                   "auth": {"secretRef": {"name": "creds", "key": "conn"}}}},
    {"gcs": {"bucket": "acme", "auth": {"secretRef": {"name": "creds", "key": "key.json"}}}},
    {"gcs": {"bucket": "acme", "endpointUrl": "http://emulator:9023", "auth": {"anonymous": True}}},
    {"walkme": {"auth": SECRET}},
]


@pytest.mark.parametrize("spec", AMBIENT)
def test_ambient_identity_is_refused_unless_the_namespace_is_listed(spec: dict) -> None:
    connection = ConnectionSpec.model_validate(spec)
    message = ambient_refusal(connection, "team-a", TenancyPolicy())
    assert message is not None and "team-a" in message and "tenancy.ambientIdentity.namespaces" in message
    assert ambient_refusal(connection, "team-a", TenancyPolicy(ambient_namespaces=frozenset({"team-a"}))) is None
    assert ambient_refusal(connection, "team-b", TenancyPolicy(ambient_namespaces=frozenset({"team-a"})))
    assert ambient_refusal(connection, "team-b", TenancyPolicy(ambient_namespaces=frozenset({"*"}))) is None


@pytest.mark.parametrize("spec", WITH_CREDENTIALS)
def test_secret_credentials_and_anonymous_access_are_not_ambient(spec: dict) -> None:
    connection = ConnectionSpec.model_validate(spec)
    assert ambient_identity(connection) is None
    assert ambient_refusal(connection, "team-a", TenancyPolicy()) is None


def secret(type_: str = "Opaque", labels: dict[str, str] | None = None) -> dict:
    return {"type": type_, "metadata": {"name": "creds", "labels": labels or {}}}


def test_service_account_tokens_are_refused_whatever_their_labels() -> None:
    policy = TenancyPolicy(secret_label=("walkme-dic.io/use", "yes"))
    token = secret("kubernetes.io/service-account-token", {"walkme-dic.io/use": "yes"})
    assert "service-account token" in (secret_refusal(token, policy) or "")
    assert secret_refusal(token, TenancyPolicy())


def test_the_admins_label_must_match_exactly() -> None:
    policy = TenancyPolicy(secret_label=("walkme-dic.io/use", "yes"))
    assert secret_refusal(secret(labels={"walkme-dic.io/use": "yes"}), policy) is None
    assert "walkme-dic.io/use=yes" in (secret_refusal(secret(labels={"walkme-dic.io/use": "no"}), policy) or "")
    assert secret_refusal(secret(), policy)
    assert secret_refusal(secret(), TenancyPolicy()) is None


@given(st.text(max_size=40))
def test_a_label_flag_parses_or_says_how_to_write_it(text: str) -> None:
    try:
        key, value = parse_label(text)
    except ValueError as error:
        assert "KEY=VALUE" in str(error)
    else:
        left, _, right = text.partition("=")
        assert (key, value) == (left.strip(), right.strip()) and key


async def test_one_namespace_runs_no_more_than_its_share_and_others_do_not_wait() -> None:
    pool = ProbePool(workers=8, per_namespace=2)
    release, running, peak, lock = threading.Event(), [0], [0], threading.Lock()

    def slow() -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return "slow"

    noisy = [asyncio.create_task(pool.run("noisy", slow, 30)) for _ in range(6)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    assert await pool.run("quiet", lambda: "quick", 1) == "quick"
    assert time.monotonic() - started < 0.5
    assert peak[0] == 2
    release.set()
    assert await asyncio.gather(*noisy) == ["slow"] * 6
    pool.close()


async def test_the_timeout_counts_from_the_start_and_a_timed_out_probe_keeps_its_slot_until_it_ends() -> None:
    pool = ProbePool(workers=1, per_namespace=1)
    release = threading.Event()
    busy = asyncio.create_task(pool.run("a", lambda: release.wait(5), 0.2))
    with pytest.raises(TimeoutError):
        await busy
    queued = asyncio.create_task(pool.run("a", lambda: "next", 0.2))
    await asyncio.sleep(0.5)
    assert not queued.done(), "the namespace's slot was given away while its timed-out probe still ran"
    release.set()
    assert await queued == "next"  # its 0.2 s only started once the pool's one thread was free
    pool.close()
