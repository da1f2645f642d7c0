"""Mistakes users make in manifests are rejected by the operator's models with a message that names the field.

What the API server itself refuses of this corpus is checked against the real kube-apiserver in
tests/operator/test_admission.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.manifests import model_error

API = "integrations.walkme.io/v1alpha1"
S3 = {"s3": {"bucket": "acme-data", "region": "eu-west-1", "auth": {"secretRef": {"name": "aws"}}}}
SFTP = {"sftp": {"host": "files.acme.example", "username": "dic", "path": "/upload",
                 "hostKeys": ["files.acme.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ"],
                 "auth": {"secretRef": {"name": "sftp"}}}}
INBOUND = {
    "direction": "Inbound",
    "connectionRef": {"name": "lake"},
    "walkmeConnectionRef": {"name": "walkme"},
    "source": {"file": {"path": "users.csv"}},
    "destination": {"walkme": {"integrationTokenSecretRef": {"name": "tok", "key": "token"},
                               "userIdProperty": "uuid"}},
    "mapping": {"key": {"source": "id", "destination": "uuid"}},
}
OUTBOUND = {
    "direction": "Outbound",
    "connectionRef": {"name": "sf"},
    "walkmeConnectionRef": {"name": "walkme"},
    "source": {"walkme": {"dataset": "users"}},
    "destination": {"salesforce": {"object": "Contact", "operation": "upsert", "externalIdField": "Ext__c"}},
    "mapping": {"key": {"source": "userId", "destination": "Ext__c"}},
}


def manifest(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": "x", "namespace": "ns"}, "spec": spec}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return spec


DELETE = object()


def fields(total: int) -> list[dict[str, str]]:
    return [{"source": f"c{i}", "destination": f"a{i}"} for i in range(total)]


MISTAKES = [
    ("no provider", "Connection", {"probeInterval": "5m"}, "exactly one provider"),
    ("two providers", "Connection", {**S3, "walkme": {"auth": {"secretRef": {"name": "w"}}}}, "exactly one provider"),
    ("inline credentials", "Connection", changed(S3, "s3.accessKeyId", "AKIA"), "accessKeyId"),
    ("bad probe interval", "Connection", {**S3, "probeInterval": "10 minutes"}, "probeInterval"),
    ("bad secret name", "Connection", changed(S3, "s3.auth.secretRef.name", "Not_A_Name"), "name"),
    ("azure without auth", "Connection",
     {"azureBlob": {"accountUrl": "https://a.blob.core.windows.net", "container": "data", "auth": {}}}, "auth"),
    ("salesforce without url", "Connection", {"salesforce": {"auth": {"secretRef": {"name": "sf"}}}},
     "instanceUrl"),
    ("unknown provider", "Connection", {"dropbox": {"folder": "b"}}, "dropbox"),
    ("source path leaving its folder", "Integration", changed(INBOUND, "source.file.path", "../b/users.csv"),
     "'..' segment"),
    ("source path with an empty segment", "Integration", changed(INBOUND, "source.file.path", "in//users.csv"),
     "every segment of a path is a name"),
    ("bad cron", "Integration", {**INBOUND, "schedule": "every day"}, "schedule"),
    ("bad time zone", "Integration", {**INBOUND, "timeZone": "Mars/Olympus"}, "timeZone"),
    ("unknown direction", "Integration", {**INBOUND, "direction": "Sideways"}, "direction"),
    ("inbound reading walkme", "Integration", changed(INBOUND, "source", {"walkme": {"dataset": "users"}}),
     "source"),
    ("outbound writing walkme", "Integration",
     changed(OUTBOUND, "destination", INBOUND["destination"]), "destination"),
    ("upsert without external id", "Integration",
     changed(OUTBOUND, "destination.salesforce.externalIdField", DELETE), "externalIdField"),
    ("report without id", "Integration", changed(OUTBOUND, "source.walkme.dataset", "report"), "reportId"),
    ("bad since", "Integration", changed(OUTBOUND, "source.walkme.since", "yesterday"), "since"),
    ("soql and object", "Integration",
     changed(INBOUND, "source", {"salesforce": {"soql": "SELECT Id FROM Contact", "object": "Contact",
                                                "fields": ["Id"]}}), "soql"),
    ("duplicate destination", "Integration",
     changed(INBOUND, "mapping.fields", [{"source": "a", "destination": "uuid"}]), "uuid"),
    ("active field on outbound", "Integration", changed(OUTBOUND, "mapping.activeField", "active"),
     "activeField"),
    ("missing mapping key", "Integration", changed(INBOUND, "mapping.key", DELETE), "key"),
    ("zero history", "Integration", {**INBOUND, "runHistoryLimit": 0}, "runHistoryLimit"),
    ("percent above 100", "Integration", {**INBOUND, "maxRejectedPercent": 150}, "maxRejectedPercent"),
    ("missing connectionRef", "Integration", changed(INBOUND, "connectionRef", DELETE), "connectionRef"),
    ("unknown field", "Integration", {**INBOUND, "retries": 3}, "retries"),
    ("two sources", "Integration",
     changed(INBOUND, "source.salesforce", {"soql": "SELECT Id FROM Contact"}), "source"),
    ("bad field type", "Integration",
     changed(INBOUND, "mapping.fields", [{"source": "a", "destination": "b", "type": "money"}]), "type"),
    ("bad delimiter", "Integration", changed(INBOUND, "source.file.delimiter", ";;"), "delimiter"),
    *[(f"sftp {name}", "Connection", changed(SFTP, path, value), field) for name, path, value, field in [
        ("inline password", "sftp.password", "hunter2", "password"),
        ("without auth", "sftp.auth", DELETE, "auth"),
        ("port out of range", "sftp.port", 70000, "port"),
        ("URL as host", "sftp.host", "sftp://files.acme.example", "host"),
        ("user@host as host", "sftp.host", "dic@files.acme.example", "host"),
        ("host key without host", "sftp.hostKeys", ["AAAAC3NzaC1lZDI1NTE5AAAAIJ"], "hostKeys"),
        ("empty host keys", "sftp.hostKeys", [], "hostKeys"),
        ("cert-authority line", "sftp.hostKeys", ["@cert-authority *.acme.example ssh-ed25519 AAAA"], "hostKeys"),
        ("missing username", "sftp.username", DELETE, "username"),
        ("option as host", "sftp.host", "-oProxyCommand=id", "host"),
    ]],
    *[(f"url {name}", "Connection", {"walkme": {"apiUrl": url, "auth": {"secretRef": {"name": "w"}}}}, "apiUrl")
      for name, url in [("with user and password", "https://admin:PASSWORD@api.walkme.com"),
                        ("with a user", "https://admin@api.walkme.com"),
                        ("with a trailing newline", "https://api.walkme.com\n"),
                        ("with a space", "https://api.walkme.com /v1")]],
    ("webhook url with a password", "Connection", {"webhook": {"url": "https://u:p@hooks.acme.example/dic",
                                                               "auth": {"secretRef": {"name": "hook"}}}}, "url"),
    ("gcs anonymous against Google", "Connection", {"gcs": {"bucket": "acme-data", "auth": {"anonymous": True}}},
     "anonymous"),
    ("gcs bucket too short", "Connection", {"gcs": {"bucket": "b"}}, "bucket"),
    ("gcs key without its key name", "Connection", {"gcs": {"bucket": "acme-data", "auth": {"secretRef": {
        "name": "gcp"}}}}, "key"),
    ("webhook over plain http", "Connection", {"webhook": {"url": "http://hooks.acme.example/dic",
                                                           "auth": {"secretRef": {"name": "hook"}}}}, "url"),
    ("webhook without a signing secret", "Connection", {"webhook": {"url": "https://hooks.acme.example/dic"}},
     "auth"),
    ("webhook batch of zero", "Integration", changed(OUTBOUND, "destination", {"webhook": {"batchSize": 0}}),
     "batchSize"),
    ("webhook on an inbound integration", "Integration", changed(INBOUND, "destination", {"webhook": {}}),
     "destination"),
    ("more than 100 WalkMe properties", "Integration",
     changed(INBOUND, "mapping.fields", fields(120)), "at most 100 properties"),
    ("100 properties with the active column", "Integration",
     changed(changed(INBOUND, "mapping.fields", fields(99)), "mapping.activeField", "active"),
     "at most 100 properties"),
    ("boolean attribute into WalkMe", "Integration",
     changed(INBOUND, "mapping.fields", [{"source": "vip", "destination": "vip", "type": "boolean"}]),
     "String, Number or Date"),
    ("timestamp attribute into WalkMe", "Integration",
     changed(INBOUND, "mapping.fields", [{"source": "seen", "destination": "seen", "type": "timestamp"}]),
     "String, Number or Date"),
    ("unknown encoding", "Integration", changed(INBOUND, "source.file.encoding", "utf-9"), "encoding"),
    ("byte transform as encoding", "Integration", changed(INBOUND, "source.file.encoding", "base64"), "encoding"),
    ("clear on an outbound file", "Integration",
     changed(changed(OUTBOUND, "destination", {"file": {"path": "out.csv"}}), "mapping.emptyValues", "clear"),
     "emptyValues"),
]


@pytest.mark.parametrize(("kind", "spec", "field"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistake_is_rejected_naming_the_field(kind: str, spec: dict[str, Any], field: str) -> None:
    obj = manifest(kind, spec)
    error = model_error(obj)
    assert error is not None, "the operator's models accepted it"
    assert field in error, error


def test_at_least_twenty_kinds_of_mistake() -> None:
    assert len(MISTAKES) >= 20


FIELD_COUNTS = [0, 1, 98]  # with the key and the activeField: at most 100 properties


@pytest.mark.parametrize("total", FIELD_COUNTS)
def test_up_to_100_properties_are_accepted(total: int) -> None:
    spec = changed(changed(INBOUND, "mapping.fields", fields(total)), "mapping.activeField", "active")
    assert model_error(manifest("Integration", spec)) is None


ENCODINGS = ["utf-8", "UTF-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "shift_jis", "iso-8859-15"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_any_text_encoding_python_knows_is_accepted(encoding: str) -> None:
    assert model_error(manifest("Integration", changed(INBOUND, "source.file.encoding", encoding))) is None
