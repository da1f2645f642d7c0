"""Egress rules for the whole flow on one machine: the demo and the tests run every outside system (S3
and Azure emulators, the fake WalkMe and Salesforce, sshd, webhook receivers) on loopback over plain http,
which the product's default rules refuse. Only this machine's loopback is opened, nothing else."""

from __future__ import annotations

from typing import Any

from walkme_dic.egress import EgressPolicy

LOOPBACK = EgressPolicy(plain_http_hosts=("127.0.0.1", "localhost", "::1"), allowed_hosts=("localhost",),
                        allowed_cidrs=("127.0.0.0/8", "::1/128"))
LOOPBACK_JSON = LOOPBACK.model_dump_json(by_alias=True)


def loopback_values() -> dict[str, Any]:
    """The chart's ``egress`` values for LOOPBACK."""
    return LOOPBACK.model_dump(by_alias=True, mode="json")
