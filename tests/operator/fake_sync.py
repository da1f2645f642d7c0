"""Stands in for `walkme-dic sync` in the operator tier (the operator is under test, not the engine).

It reads the run's request from WALKME_DIC_REQUEST like the real command and behaves as
`$FAKE_SYNC_DIR/<integration>.json` says: {"sleep": seconds, "exit": code, "result": {...}}.
Without a file it succeeds with three rows. Engine behaviour is covered by tests/e2e with the real command.
"""

import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    request = json.loads(os.environ["WALKME_DIC_REQUEST"])
    result_path = sys.argv[sys.argv.index("--result") + 1]
    plan_file = Path(os.environ["FAKE_SYNC_DIR"]) / f"{request['integration']['name']}.json"
    plan = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    print(json.dumps({"phase": "start", "runId": request["runId"]}), flush=True)
    time.sleep(plan.get("sleep", 0))
    result = plan.get("result", {"result": "Succeeded", "reason": "Synced", "rowsRead": 3, "rowsWritten": 3})
    Path(result_path).write_text(json.dumps(result))
    failed = 1 if result.get("retryable") else 3  # the real command's exit codes (jobs/manifest.py)
    return int(plan.get("exit", 0 if result.get("result") != "Failed" else failed))


if __name__ == "__main__":
    sys.exit(main())
