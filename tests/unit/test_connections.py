"""Connection decisions: when to probe, which keys are missing, the status written (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from walkme_dic.api.common import parse_duration
from walkme_dic.api.connection import ConnectionSpec, ConnectionStatus
from walkme_dic.conditions import find_condition
from walkme_dic.planning.connection import (
    ProbeOutcome,
    connection_status,
    endpoint,
    missing_secret_keys,
    probe_due,
    probe_wait,
    probing_status,
    unreachable_message,
)

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
S3 = ConnectionSpec.model_validate(
    {"s3": {"bucket": "acme", "region": "eu-west-1", "auth": {"secretRef": {"name": "aws"}}}, "probeInterval": "5m"}
)
SALESFORCE = ConnectionSpec.model_validate(
    {"salesforce": {"loginUrl": "https://login.salesforce.com", "auth": {"secretRef": {"name": "sf"}}}}
)


def test_missing_keys_are_named_with_what_was_found() -> None:
    message = missing_secret_keys(S3, {"AWS_ACCESS_KEY_ID": "AKIA123"})
    assert message is not None
    assert "AWS_SECRET_ACCESS_KEY" in message and "found keys: AWS_ACCESS_KEY_ID" in message
    assert "AKIA123" not in message
    assert missing_secret_keys(S3, {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}) is None


def test_salesforce_accepts_either_credential_set() -> None:
    assert missing_secret_keys(SALESFORCE, {"clientId": "c", "username": "u", "password": "p"}) is None
    assert missing_secret_keys(SALESFORCE, {"clientId": "c", "clientSecret": "s"}) is None
    assert missing_secret_keys(SALESFORCE, {"clientId": "c", "username": "u", "privateKey": "pem"}) is None
    assert "clientId+clientSecret or clientId+username+password or clientId+username+privateKey" in \
        (missing_secret_keys(SALESFORCE, {"clientId": "c", "username": "u"}) or "")


def sftp(**block: object) -> ConnectionSpec:
    return ConnectionSpec.model_validate({"sftp": {"host": "files.acme.example", "username": "dic",
                                                   "auth": {"secretRef": {"name": "sftp"}}, **block}})


def test_sftp_needs_a_password_or_a_key_and_host_keys_from_spec_or_secret() -> None:
    pinned = sftp(hostKeys=["files.acme.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ"])
    assert missing_secret_keys(pinned, {"password": "p"}) is None
    assert missing_secret_keys(pinned, {"privateKey": "k"}) is None
    assert "must have keys password or privateKey (found keys: passphrase)" in \
        (missing_secret_keys(pinned, {"passphrase": "x"}) or "")
    unpinned = sftp()
    assert missing_secret_keys(unpinned, {"privateKey": "k", "knownHosts": "h"}) is None
    assert "password+knownHosts or privateKey+knownHosts" in (missing_secret_keys(unpinned, {"privateKey": "k"}) or "")


def test_gcs_needs_the_named_key_and_webhook_its_signing_secret() -> None:
    gcs = ConnectionSpec.model_validate({"gcs": {"bucket": "acme", "auth": {"secretRef": {"name": "g", "key": "sa"}}}})
    assert "must have keys sa (found keys: key.json)" in (missing_secret_keys(gcs, {"key.json": "{}"}) or "")
    assert missing_secret_keys(gcs, {"sa": "{}"}) is None
    hook = ConnectionSpec.model_validate({"webhook": {"url": "https://h.example",
                                                      "auth": {"secretRef": {"name": "h"}}}})
    assert "must have keys signingSecret (found keys: ca.crt)" in (missing_secret_keys(hook, {"ca.crt": "x"}) or "")
    assert missing_secret_keys(hook, {"signingSecret": "s"}) is None


NEVER_PROBED = ConnectionStatus()


def status_after(outcome: ProbeOutcome, when: datetime = NOW) -> ConnectionStatus:
    return connection_status(S3, outcome, previous=NEVER_PROBED, generation=1, secret_version="7", now=when)


def test_probe_is_due_on_change_and_after_the_interval() -> None:
    ok = status_after(ProbeOutcome(True, "Probed", "bucket reachable"))
    assert not probe_due(S3, ok, 1, "7", NOW + timedelta(minutes=4))
    assert probe_due(S3, ok, 1, "7", NOW + timedelta(minutes=5))
    assert probe_due(S3, ok, 2, "7", NOW)
    assert probe_due(S3, ok, 1, "8", NOW)


def test_failed_probe_is_retried_sooner() -> None:
    failed = status_after(ProbeOutcome(False, "ProbeFailed", "no route"))
    assert probe_due(S3, failed, 1, "7", NOW + timedelta(seconds=61))


def test_failed_probes_back_off_doubling_up_to_the_interval() -> None:
    """A Connection failing since NOW is probed again after 60 s, then the time it has been failing: 60, 120,
    240 s ... never later than its probe interval (10 m)."""
    spec = ConnectionSpec.model_validate({**S3.model_dump(by_alias=True, exclude_none=True), "probeInterval": "10m"})
    status, at, waits = status_after(ProbeOutcome(False, "ProbeFailed", "no route")), NOW, []
    for _ in range(6):
        wait = probe_wait(spec, status)
        waits.append(wait.total_seconds())
        assert not probe_due(spec, status, 1, "7", at + wait - timedelta(seconds=1))
        at += wait
        status = connection_status(spec, ProbeOutcome(False, "ProbeFailed", "no route"), previous=status,
                                   generation=1, secret_version="7", now=at)
    assert waits == [60, 60, 120, 240, 480, 600]
    recovered = connection_status(spec, ProbeOutcome(True, "Probed", "ok"), previous=status, generation=1,
                                  secret_version="7", now=at)
    assert probe_wait(spec, recovered) == timedelta(minutes=10)


def test_a_probe_sets_every_field_and_keeps_one_of_another_version() -> None:
    stored = ConnectionStatus.model_validate({"observedGeneration": 1, "provider": "gcs", "secretVersion": "6",
                                              "message": "old", "probedBy": "another version"})
    wire = connection_status(S3, ProbeOutcome(True, "Probed", "ok"), previous=stored, generation=2,
                             secret_version="7", now=NOW).to_wire()
    assert {k: v for k, v in wire.items() if k != "conditions"} == {
        "observedGeneration": 2, "provider": "s3", "secretVersion": "7", "message": "ok",
        "lastProbeTime": "2026-11-25T10:00:00Z", "probedBy": "another version"}


def test_ready_transition_time_is_kept_while_status_stays() -> None:
    first = status_after(ProbeOutcome(True, "Probed", "ok"))
    later = connection_status(S3, ProbeOutcome(True, "Probed", "ok"), previous=first, generation=1,
                              secret_version="7", now=NOW + timedelta(minutes=10))
    ready = find_condition(later.conditions, "Ready")
    assert ready is not None and ready.last_transition_time == "2026-11-25T10:00:00Z"
    assert later.last_probe_time == "2026-11-25T10:10:00Z"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_bad_duration_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="like 30s, 10m or 1h30m"):
        parse_duration("10 minutes")


def test_first_probe_shows_probing_at_once_and_names_the_endpoint() -> None:
    probing = probing_status(S3, previous=NEVER_PROBED, generation=1, now=NOW)
    assert probing is not None
    ready, reconciling, stalled = (next(c for c in probing.conditions if c.type == t)
                                   for t in ("Ready", "Reconciling", "Stalled"))
    assert (ready.status, ready.reason) == ("Unknown", "Probing")
    assert (reconciling.status, reconciling.reason) == ("True", "Probing")
    assert stalled.status == "False"
    assert "s3.eu-west-1.amazonaws.com" in ready.message and "'acme'" in ready.message
    assert probing.observed_generation == 1 and probing.provider == "s3"


def test_a_changed_spec_shows_probing_but_a_periodic_probe_keeps_the_answer() -> None:
    ok = status_after(ProbeOutcome(True, "Probed", "bucket reachable"))
    assert probing_status(S3, previous=ok, generation=1, now=NOW + timedelta(minutes=5)) is None
    changed = probing_status(S3, previous=ok, generation=2, now=NOW + timedelta(minutes=5))
    assert changed is not None and changed.last_probe_time == ok.last_probe_time
    assert next(c for c in changed.conditions if c.type == "Ready").status == "Unknown"


def test_a_probe_interrupted_by_a_restart_is_probed_again() -> None:
    probing = probing_status(S3, previous=NEVER_PROBED, generation=1, now=NOW)
    assert probing is not None
    probing.secret_version, probing.last_probe_time = "7", "2026-11-25T10:00:00Z"
    assert probe_due(S3, probing, 1, "7", NOW)


@pytest.mark.parametrize(("spec", "host"), [
    ({"s3": {"bucket": "acme", "region": "eu-west-1"}}, "bucket 'acme' at s3.eu-west-1.amazonaws.com"),
    ({"s3": {"bucket": "acme", "region": "us-east-1", "endpointUrl": "http://minio.storage:9000"}},
     "bucket 'acme' at minio.storage:9000"),
    ({"azureBlob": {"accountUrl": "https://acct.blob.core.windows.net", "container": "exports",
                    "auth": {"workloadIdentity": {}}}}, "container 'exports' at acct.blob.core.windows.net"),
    ({"salesforce": {"instanceUrl": "https://acme.my.salesforce.com", "auth": {"secretRef": {"name": "sf"}}}},
     "Salesforce at acme.my.salesforce.com"),
    ({"salesforce": {"loginUrl": "https://test.salesforce.com", "instanceUrl": "https://acme.my.salesforce.com",
                     "auth": {"secretRef": {"name": "sf"}}}}, "Salesforce at test.salesforce.com"),
    ({"walkme": {"auth": {"secretRef": {"name": "wm"}}}}, "the WalkMe API at api.walkme.com"),
    ({"sftp": {"host": "sftp.partner.example", "port": 2222, "username": "u", "path": "/in",
               "auth": {"secretRef": {"name": "s"}}}}, "folder '/in' on sftp.partner.example:2222"),
    ({"sftp": {"host": "10.0.0.7", "username": "u", "auth": {"secretRef": {"name": "s"}}}},
     "folder '~' on 10.0.0.7:22"),
])
def test_unreachable_hosts_name_the_endpoint(spec: dict, host: str) -> None:
    connection = ConnectionSpec.model_validate(spec)
    assert endpoint(connection) == host
    message = unreachable_message(connection)
    assert message.startswith(f"cannot reach {host}: no connection could be made")
