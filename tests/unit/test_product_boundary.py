"""The product package is what the image runs: no emulator, fake, node agent or test support in it.

Demo and test support live in dev/walkme_dic_dev (put on the venv's path by scripts/bootstrap.sh) and
tests/; the image copies only operator/ (.dockerignore) and installs the wheel built from it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "operator" / "walkme_dic"
NOT_PRODUCT = ("walkme_dic_dev", "tests", "moto", "kmock", "pytest", "hypothesis", "bench")
NOT_PRODUCT_NAMES = re.compile(r"devcluster|emulator|kubelet|node_agent|fake|mock", re.IGNORECASE)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(PRODUCT.rglob("*.py")), ids=lambda p: str(p.relative_to(PRODUCT)))
def test_the_product_imports_no_dev_or_test_support(path: Path) -> None:
    offending = sorted(m for m in imported_modules(path) if m.split(".")[0] in NOT_PRODUCT)
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}: move what it needs into walkme_dic"


def test_the_product_has_no_emulator_fake_or_kubelet() -> None:
    named = [str(p.relative_to(PRODUCT)) for p in PRODUCT.rglob("*") if NOT_PRODUCT_NAMES.search(p.name)]
    assert named == []


def test_the_check_sees_a_dev_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom walkme_dic_dev.cluster import Cluster\nfrom . import sibling\n")
    assert imported_modules(module) == {"os", "walkme_dic_dev.cluster"}


def test_the_image_is_built_from_the_product_alone() -> None:
    allowed = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert allowed == ["!pyproject.toml", "!README.md", "!operator/"]
    copies = re.findall(r"^COPY\s+(?!--)(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert copies == ["pyproject.toml", "operator"]


# The engine (sync/, connectors/) runs in the Job and knows no Kubernetes; pure planning talks to no API.
LAYERS = {"sync": ("walkme_dic.jobs", "walkme_dic.controllers", "walkme_dic.planning", "kubernetes", "kopf"),
          "connectors": ("walkme_dic.jobs", "walkme_dic.controllers", "walkme_dic.planning", "walkme_dic.sync",
                         "kubernetes", "kopf"),
          "planning": ("walkme_dic.controllers", "walkme_dic.kube", "kubernetes", "kopf")}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    forbidden = LAYERS[layer]
    offending = {str(path.relative_to(PRODUCT)): sorted(m for m in imported_modules(path)
                                                       if any(m == f or m.startswith(f + ".") for f in forbidden))
                 for path in sorted((PRODUCT / layer).rglob("*.py"))}
    assert {path: found for path, found in offending.items() if found} == {}


# The engine reaches every system through the record and file interfaces and the registry's factories.
INTERFACES = {"walkme_dic.connectors.base", "walkme_dic.connectors.records", "walkme_dic.connectors.registry"}


def connector_modules(path: Path) -> set[str]:
    """The walkme_dic.connectors modules ``path`` imports, at the top or inside a function (``from
    walkme_dic.connectors import walkme`` names walkme_dic.connectors.walkme)."""
    found = {m for m in imported_modules(path) if m.startswith("walkme_dic.connectors.")}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "walkme_dic.connectors":
            found.update(f"walkme_dic.connectors.{alias.name}" for alias in node.names)
    return found


def test_the_engine_imports_no_concrete_connector() -> None:
    offending = {str(path.relative_to(PRODUCT)): sorted(connector_modules(path) - INTERFACES)
                 for path in sorted((PRODUCT / "sync").rglob("*.py"))}
    assert {path: found for path, found in offending.items() if found} == {}, \
        "open the connector through walkme_dic.connectors.registry, typed by connectors/records.py or base.py"


def test_the_connector_check_sees_imports_in_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from walkme_dic.connectors.records import BATCH\nfrom walkme_dic.connectors import webhook\n"
                      "def f():\n    from walkme_dic.connectors.salesforce import SalesforceClient\n")
    assert connector_modules(module) - INTERFACES == {"walkme_dic.connectors.salesforce",
                                                      "walkme_dic.connectors.webhook"}


def test_the_operator_has_no_kopf_handler_that_reads_a_diff_base() -> None:
    """controllers/run.py NoDiffBase builds no diff base: kopf reads one only for change handlers (on.create,
    on.update, on.field, ...) and daemons/timers. One of those added later would silently never fire."""
    import kopf

    import walkme_dic.controllers.run  # noqa: F401 - registers the handlers

    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == [] and registry._spawning.get_all_handlers() == [], \
        "a change handler or daemon needs kopf's diff base: drop NoDiffBase in controllers/run.py"
    assert registry._watching.get_all_handlers(), "the check sees the on.event handlers"
