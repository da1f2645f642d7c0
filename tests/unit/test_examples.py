"""Every example manifest is valid for the API server's schema and for the operator's models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.manifests import load_documents, model_error, schema_errors
from walkme_dic.api.connection import PROVIDERS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
README = EXAMPLES.parent / "README.md"
INSIGHTS = ("users", "events", "sessions", "report")  # datasets an endpoint WalkMe does not publish serves
NEEDS_AN_ENDPOINT = "needs an Insights endpoint WalkMe does not publish"
RESOURCES = [
    pytest.param(doc, id=f"{path.relative_to(EXAMPLES)}:{doc['metadata']['name']}")
    for path in sorted(EXAMPLES.rglob("*.yaml"))
    for doc in load_documents(path)
    if doc["kind"] in ("Connection", "Integration")
]


def test_there_is_an_example_for_every_provider_and_direction() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"connection-s3.yaml", "connection-azure-blob.yaml", "connection-salesforce.yaml",
            "connection-walkme.yaml", "inbound-s3-csv.yaml", "inbound-azure-jsonl.yaml",
            "inbound-salesforce-soql.yaml", "outbound-walkme-to-s3.yaml", "outbound-walkme-to-azure.yaml",
            "outbound-walkme-to-salesforce.yaml"} <= names
    assert {"connection-gcs.yaml", "inbound-gcs-csv.yaml", "outbound-walkme-to-gcs.yaml", "connection-webhook.yaml",
            "outbound-walkme-to-webhook.yaml"} <= names
    assert {"outbound-walkme-exports-to-salesforce.yaml", "outbound-activitylog-to-webhook.yaml"} <= names, \
        "the outbound sources WalkMe documents: its own export files, the activity log"
    assert len(RESOURCES) >= 14


def test_every_provider_has_a_connection_example() -> None:
    for provider in PROVIDERS:
        kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in provider)
        assert (EXAMPLES / f"connection-{kebab}.yaml").exists(), provider


def test_sftp_has_an_example_per_direction() -> None:
    directions = {doc["spec"]["direction"] for path in EXAMPLES.glob("*sftp*.yaml") for doc in load_documents(path)
                  if doc["kind"] == "Integration" and doc["spec"]["connectionRef"]["name"] == "partner-sftp"}
    assert directions == {"Inbound", "Outbound"}


@pytest.mark.parametrize("doc", RESOURCES)
def test_example_is_valid(doc: dict) -> None:
    assert schema_errors(doc) == []
    assert model_error(doc) is None


def test_every_incremental_file_export_example_names_a_new_file_each_run() -> None:
    """README "One file, one writer": a since: lastRun export whose path lacks {runId} fails its second run
    of a day/slot with DestinationExists, so no example may teach one."""
    exports = [doc for doc in (d.values[0] for d in RESOURCES)
               if doc["kind"] == "Integration" and doc["spec"]["direction"] == "Outbound"
               and "file" in doc["spec"]["destination"]]
    assert exports
    for doc in exports:
        if (doc["spec"]["source"]["walkme"].get("since") or "lastRun") == "lastRun":
            assert "{runId}" in doc["spec"]["destination"]["file"]["path"], doc["metadata"]["name"]


def readme_section(heading: str) -> str:
    return README.read_text().split(f"\n{heading}\n")[1].split("\n## ")[0].split("\n### ")[0]


def outbound_dataset(path: Path) -> str | None:
    specs = [doc["spec"] for doc in load_documents(path) if doc["kind"] == "Integration"]
    return next((spec["source"]["walkme"]["dataset"] for spec in specs if "walkme" in spec["source"]), None)


def test_readme_walks_through_every_example_and_says_which_need_an_endpoint_walkme_does_not_publish() -> None:
    section = readme_section("## Walk-through of the examples")
    rows = dict(re.findall(r"^\| `([^`]+\.yaml)` \| (.+) \|$", section, re.M))
    assert set(rows) == {p.name for p in EXAMPLES.glob("*.yaml")}, "each example has its row"
    for name, row in rows.items():
        dataset = outbound_dataset(EXAMPLES / name)
        says = NEEDS_AN_ENDPOINT in row
        assert says == (dataset in INSIGHTS), f"{name} ({dataset}): {row}"
        if dataset in INSIGHTS:
            assert "not publish" in (EXAMPLES / name).read_text(), f"{name} says so itself too"
    first = section.index("`outbound-walkme-exports-to-salesforce.yaml`")
    assert first < section.index("`outbound-activitylog-to-webhook.yaml`") < section.index("`outbound-walkme-to-")
    exports = [doc["spec"] for doc in load_documents(EXAMPLES / "outbound-walkme-exports-to-salesforce.yaml")
               if doc["kind"] == "Integration"]
    assert "no WalkMe Connection" in rows["outbound-walkme-exports-to-salesforce.yaml"]
    assert [spec.get("walkmeConnectionRef") for spec in exports] == [None]


def test_readme_leads_with_the_outbound_sources_walkme_has() -> None:
    text = README.read_text()
    for part in (text.split("\n## The two commands\n")[0], readme_section("## What it does")):
        insights = part.index("`users`")
        assert part.index("exportFiles") < insights and part.index("activityLog") < insights, part
        assert "does not publish" in part[insights - 200:], "the Insights datasets come with what they need"
