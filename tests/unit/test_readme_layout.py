"""README's Layout section names the product package's tree as it is: every package and top-level module, and no
module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "walkme_dic"


def layout() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def test_every_package_and_top_level_module_is_in_the_layout() -> None:
    block = layout()
    packages = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists())
    assert packages, PACKAGE
    missing = [name for name in packages if not re.search(rf"^  {name}/", block, re.MULTILINE)]
    modules = sorted(path.name for path in PACKAGE.glob("*.py") if not path.name.startswith("__"))
    missing += [name for name in modules if not re.search(rf"\b{re.escape(name)}\b", block)]
    assert missing == [], f"README Layout does not name {missing}"


def test_every_module_the_layout_names_exists() -> None:
    block = layout()
    named = set(re.findall(r"\b((?:[a-z_]+/)*[a-z_]+\.py)\b", block))
    assert named
    everything = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")}
    gone = sorted(name for name in named if name not in everything and not any(
        path.endswith("/" + name) for path in everything))
    assert gone == [], f"README Layout names modules that do not exist: {gone}"
