"""bench/results.json: every case a bench ran, with the command that ran it, and the machine."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


def write_results(rows: list[dict[str, Any]], command: str, *, update: bool) -> None:
    """bench/results.json; with ``update``, this run's cases replace the same cases of earlier runs."""
    for row in rows:
        row["command"] = command
    kept = json.loads(RESULTS.read_text())["results"] if update and RESULTS.exists() else []
    cases = {row["case"] for row in rows}
    merged = [row for row in kept if row["case"] not in cases] + rows
    RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                   "results": merged}, indent=2, ensure_ascii=False) + "\n")
