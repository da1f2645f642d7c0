"""Egress rules, through the real operator and the real API server (issue 20, row 3 of its table): a tenant's
URL at loopback, metadata or over plain http is refused before its Secret is read; a name that resolves to a
refused address is refused where the socket would open; and a host out of reach reads the same however it is
out of reach, so probes cannot map a network. The tenant's hosts are loopback listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from tests.connectors.test_unreachable import NAMES_ONLY, ed25519_line
from tests.fixtures.listeners import Listener
from tests.operator.helpers import API, NS, OperatorHandle, condition, connection, eventually, secret
from tests.operator.test_tenancy import ready_condition
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.egress import EgressPolicy
from walkme_dic.planning.connection import unreachable_message
from walkme_dic_dev.cluster import Cluster
from walkme_dic_dev.egress import LOOPBACK
from walkme_dic_dev.node_agent import NodeAgent

WALKME_SECRET = {"clientId": "tenant-client", "clientSecret": "tenant-s3cret"}


@pytest.fixture
async def egress_operator(cluster: Cluster, node: NodeAgent, request: pytest.FixtureRequest,
                          ) -> AsyncIterator[OperatorHandle]:
    """The real operator with the EgressPolicy a test names (indirect parametrize), probes timing out at 3 s,
    four at a time (a timed-out probe holds its slot until its thread ends)."""
    handle = OperatorHandle(cluster)
    handle.config = replace(handle.config, egress=request.param, probe_timeout_seconds=3, probes_per_namespace=4)
    await handle.start()
    try:
        yield handle
    finally:
        await handle.stop()


def walkme(url: str) -> dict:
    return {"walkme": {"apiUrl": url, "insightsExportUrl": url, "auth": {"secretRef": {"name": "walkme-api"}}}}


@pytest.mark.parametrize("egress_operator", [EgressPolicy()], indirect=True)
async def test_the_default_rules_refuse_plain_http_loopback_and_metadata_before_reading_a_secret(
    cluster: Cluster, egress_operator: OperatorHandle, recording_listener: Listener,
) -> None:
    await cluster.apply(secret("walkme-api", WALKME_SECRET))
    refused = {
        "plain-http": (walkme(recording_listener.url), "plain http to '127.0.0.1' is not allowed"),
        "loopback": (walkme(f"https://127.0.0.1:{recording_listener.port}"), "address 127.0.0.1 is in a range"),
        "metadata": ({"gcs": {"bucket": "tenant-bucket", "endpointUrl": "https://169.254.169.254",
                              "auth": {"anonymous": True}}},
                     "address 169.254.169.254 is in a range"),
        "api-server": (walkme("https://kubernetes.default.svc"), "cluster-internal or metadata name"),
        "hex-loopback": (walkme("https://0x7f000001"), "not a DNS name or a canonical IP address"),
    }
    for name, (spec, _) in refused.items():
        await cluster.apply(connection(name, spec))

    async def all_refused() -> dict[str, dict] | None:
        conds = {name: condition(await cluster.get(API, "Connection", NS, name), "Ready") for name in refused}
        return conds if all(c.get("reason") == "EgressDenied" for c in conds.values()) else None

    try:
        conds = await eventually(all_refused, timeout=40)
    except AssertionError:
        seen = {n: condition(await cluster.get(API, "Connection", NS, n), "Ready") for n in refused}
        pytest.fail(f"not all refused: {seen}")
    for name, (_, words) in refused.items():
        assert conds[name]["status"] == "False" and words in conds[name]["message"], conds[name]
        assert "egress.*" in conds[name]["message"], "the message names the setting that decides"
    assert recording_listener.connections == 0 and not recording_listener.received


@pytest.mark.parametrize("egress_operator", [NAMES_ONLY], indirect=True)
async def test_a_name_resolving_to_a_refused_address_is_refused_where_the_socket_opens(
    cluster: Cluster, egress_operator: OperatorHandle, recording_listener: Listener,
) -> None:
    """``localhost`` passes the checks on the spec (the admin allowed the name and plain http to it) and resolves
    to loopback, which the rules refuse: the same path a DNS-rebinding name takes at connect time."""
    await cluster.apply(secret("walkme-api", WALKME_SECRET))
    spec = walkme(f"http://localhost:{recording_listener.port}")
    await cluster.apply(connection("rebinding", spec))
    cond = await ready_condition(cluster, "rebinding", "ProbeFailed")
    assert cond["message"] == unreachable_message(ConnectionSpec.model_validate(spec))
    assert recording_listener.connections == 0 and not recording_listener.received


@pytest.mark.parametrize("egress_operator", [LOOPBACK], indirect=True)
async def test_refused_and_timed_out_read_the_same_so_probes_cannot_map_a_network(
    cluster: Cluster, egress_operator: OperatorHandle, tarpit: Listener,
) -> None:
    await cluster.apply(secret("walkme-api", WALKME_SECRET))
    closed = Listener(None)
    closed.close()  # nothing listens on its port any more: connections are refused
    specs = {"closed-port": walkme(f"http://127.0.0.1:{closed.port}"), "tarpit": walkme(tarpit.url),
             "closed-sftp": {"sftp": {"host": "127.0.0.1", "port": closed.port, "username": "u",
                                      "hostKeys": [ed25519_line("127.0.0.1", closed.port)],
                                      "auth": {"secretRef": {"name": "sftp"}}}}}
    await cluster.apply(secret("sftp", {"password": "p"}))
    for name, spec in specs.items():
        await cluster.apply(connection(name, spec))
    for name, spec in specs.items():
        try:
            cond = await ready_condition(cluster, name, "ProbeFailed")
        except AssertionError:
            pytest.fail(f"{name}: {condition(await cluster.get(API, 'Connection', NS, name), 'Ready')}")
        assert cond["message"] == unreachable_message(ConnectionSpec.model_validate(spec)), (name, cond["message"])
    assert tarpit.connections >= 1, "the tarpit was reached: its probe timed out rather than being refused"
