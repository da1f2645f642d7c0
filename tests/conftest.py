"""Shared pytest configuration: fixture modules live in tests/fixtures/ and are registered here."""

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
