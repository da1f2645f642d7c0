"""A host out of reach reads the same in a Connection's status whatever the provider's client and however the
host is out of reach (refused, or refused by the egress rules after resolution): probes cannot map a network.
Real clients (boto3, azure-storage-blob, google-cloud-storage, simple-salesforce's requests, paramiko, our
HTTP transport) against a port nothing listens on."""

from __future__ import annotations

import socket
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.fixtures.listeners import Listener
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.controllers.connection import failed_probe, guarded_probe
from walkme_dic.egress import EgressPolicy
from walkme_dic.planning.connection import unreachable_message
from walkme_dic_dev.egress import LOOPBACK

NAMES_ONLY = EgressPolicy(plain_http_hosts=("localhost",), allowed_hosts=("localhost",))  # loopback stays refused
AZURE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50"
         "uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://{host}:{port}/devstoreaccount1;")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ed25519_line(host: str, port: int) -> str:
    key = Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"[{host}]:{port} {text}"


def specs(host: str, port: int) -> dict[str, tuple[dict, dict[str, str]]]:
    url = f"http://{host}:{port}"
    return {
        "s3": ({"s3": {"bucket": "tenant-bucket", "region": "us-east-1", "endpointUrl": url,
                       "auth": {"secretRef": {"name": "aws"}}}},
               {"AWS_ACCESS_KEY_ID": "AKIATENANT", "AWS_SECRET_ACCESS_KEY": "tenant-s3cret"}),
        "azure": ({"azureBlob": {"accountUrl": f"{url}/devstoreaccount1", "container": "data",
                                 "auth": {"secretRef": {"name": "az", "key": "connectionString"}}}},
                  {"connectionString": AZURE.format(host=host, port=port)}),
        "gcs": ({"gcs": {"bucket": "tenant-bucket", "endpointUrl": url, "auth": {"anonymous": True}}}, {}),
        "salesforce": ({"salesforce": {"instanceUrl": url, "auth": {"secretRef": {"name": "sf"}}}},
                       {"clientId": "c", "clientSecret": "tenant-s3cret"}),
        "walkme": ({"walkme": {"apiUrl": url, "auth": {"secretRef": {"name": "wm"}}}},
                   {"clientId": "c", "clientSecret": "tenant-s3cret"}),
        "sftp": ({"sftp": {"host": host, "port": port, "username": "u", "hostKeys": [ed25519_line(host, port)],
                           "auth": {"secretRef": {"name": "s"}}}}, {"password": "tenant-s3cret"}),
    }


@pytest.mark.parametrize("provider", list(specs("127.0.0.1", 1)))
@pytest.mark.parametrize(("host", "rules"), [("127.0.0.1", LOOPBACK), ("localhost", NAMES_ONLY)],
                         ids=["refused", "egress-refused-after-resolution"])
def test_a_host_out_of_reach_reads_the_same_for_every_provider(provider: str, host: str, rules: EgressPolicy) -> None:
    spec_fields, credentials = specs(host, closed_port())[provider]
    spec = ConnectionSpec.model_validate(spec_fields)
    started = time.monotonic()
    with pytest.raises(Exception) as raised:  # whatever the client raises is what is judged
        guarded_probe(spec, credentials, rules, 5)
    outcome = failed_probe(spec, raised.value, credentials)
    assert (outcome.ready, outcome.reason) == (False, "ProbeFailed")
    assert outcome.message == unreachable_message(spec), f"{type(raised.value).__name__}: {raised.value}"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("provider", list(specs("127.0.0.1", 1)))
def test_a_probe_into_a_tarpit_ends_soon_after_its_timeout(provider: str, tarpit: Listener) -> None:
    """The probe's thread cannot be cancelled: its client's own timeouts and attempts must end it, or a timed-out
    probe keeps its namespace's slot (controllers/probes.py) for the client's minutes of retries."""
    spec_fields, credentials = specs("127.0.0.1", tarpit.port)[provider]
    spec = ConnectionSpec.model_validate(spec_fields)
    timeout = 2.0
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        guarded_probe(spec, credentials, LOOPBACK, timeout)
    elapsed = time.monotonic() - started
    assert elapsed < 3 * timeout + 2, f"{provider} probe took {elapsed:.1f}s"
    outcome = failed_probe(spec, raised.value, credentials)
    assert outcome.message == unreachable_message(spec), f"{type(raised.value).__name__}: {raised.value}"
