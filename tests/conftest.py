"""Shared pytest configuration: fixture modules live in tests/fixtures/ and are registered here.

Every process the tests start (operators, `walkme-dic sync`, the node agent's pods) inherits the loopback
egress rules (walkme_dic_dev.egress): all outside systems here are loopback listeners. Tests of the rules
themselves pass their own.
"""

import os

from walkme_dic.egress import POLICY_ENV
from walkme_dic_dev.egress import LOOPBACK_JSON

os.environ.setdefault(POLICY_ENV, LOOPBACK_JSON)

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.servers",
    "tests.fixtures.listeners",
    "tests.fixtures.pki",
    "tests.fixtures.azurite",
    "tests.fixtures.gcs",
    "tests.fixtures.webhook",
    "tests.fixtures.sshd",
    "tests.fixtures.walkme",
    "tests.fixtures.salesforce",
    "tests.fixtures.cluster",
]
