"""kopf's per-object timers against one resync loop over an index, on the real control plane.

The operator re-plans every Integration each resync period (schedules are time-based) with a loop of its
own (controllers/run.py ``resync_forever``) rather than ``@kopf.timer``. This bench measures the two
mechanisms alone, each handler doing nothing, with N Integrations stored: a kopf process with a timer on
Integrations at the resync interval, and a kopf process with an index of Integrations and one loop that
visits each indexed object at the same interval. For each it reports the process's CPU seconds and the
API requests it made while starting (until every object has been visited once) and in a steady window;
the rows go into bench/results.json beside the other cases.

    python -m bench.kopf_timers --integrations 2000 --interval 30 --window 90
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.cluster import mark, operator_identity, requests_between, started_cluster
from bench.operator_scale import NAMESPACE, cpu_seconds, create_objects
from bench.results import write_results
from walkme_dic.api.common import GROUP, VERSION

COMMON = """
import asyncio, kopf
from pathlib import Path
VISITS = Path(__file__).with_suffix(".visits")
seen = set()

def visited(key):
    if key not in seen:
        seen.add(key)
        VISITS.write_text(str(len(seen)))

@kopf.on.startup()
def configure(settings, **_):
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
"""

VARIANTS = {
    "kopf.timer per Integration": COMMON + f"""
@kopf.timer("{GROUP}", "{VERSION}", "integrations", interval=INTERVAL)
async def tick(namespace, name, **_):
    visited((namespace, name))
""",
    "one loop over a kopf.index": COMMON + f"""
@kopf.index("{GROUP}", "{VERSION}", "integrations")
def names(namespace, name, **_):
    return {{(namespace, name): None}}

INDEX = {{}}  # kopf hands indexes to resource handlers only, each with its own copy of the memo

@kopf.on.event("{GROUP}", "{VERSION}", "integrations")
async def keep(names, **_):
    INDEX["names"] = names

async def resync(memo):
    while True:
        for key in list(INDEX.get("names", {{}})):
            visited(key)
            await asyncio.sleep(0)
        await asyncio.sleep(INTERVAL)

@kopf.on.startup()
async def start(memo, **_):
    memo.task = asyncio.create_task(resync(memo))
""",
}


async def measure(integrations: int, interval: float, window: float) -> list[dict[str, Any]]:
    os.environ.setdefault("BENCH_S3_URL", "http://127.0.0.1:9")  # the lake Connection's endpoint; never probed
    with tempfile.TemporaryDirectory(prefix="bench-kopf-timers-") as tmp:
        workdir = Path(tmp)
        async with started_cluster(workdir) as cluster:
            identity = await operator_identity(cluster, workdir)
            await cluster.ensure_namespace(NAMESPACE)
            await create_objects(cluster, "http://127.0.0.1:9", integrations, max(1, integrations // 10))
            rows = []
            for variant, code in VARIANTS.items():
                module = workdir / f"variant{len(rows)}.py"
                module.write_text(textwrap.dedent(code).replace("INTERVAL", repr(interval)))
                rows.append(await _run(cluster, identity, variant, module, integrations, interval, window))
            return rows


async def _run(cluster: Any, identity: Any, variant: str, module: Path, integrations: int, interval: float,
               window: float) -> dict[str, Any]:
    visits = module.with_suffix(".visits")
    started_at = await mark(cluster)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--quiet",
                                str(module)], env={**os.environ, "KUBECONFIG": str(identity.kubeconfig)},
                               stdout=subprocess.DEVNULL, stderr=(module.with_suffix(".log")).open("w"))
    try:
        while not visits.exists() or int(visits.read_text() or 0) < integrations:
            if process.poll() is not None:
                raise SystemExit(f"{variant}: kopf exited {process.returncode}; see {module.with_suffix('.log')}")
            if time.monotonic() - started > 300:
                raise SystemExit(f"{variant}: not every Integration visited within 300 s")
            await asyncio.sleep(0.5)
        warm = time.monotonic()
        warm_at = await mark(cluster)
        cpu_warm = cpu_seconds(process.pid)
        await asyncio.sleep(window)
        cpu_window = cpu_seconds(process.pid) - cpu_warm
        end_at = await mark(cluster)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    starting, steady = await requests_between(cluster, identity, [(started_at, warm_at), (warm_at, end_at)])
    passes = window / interval
    return {
        "case": f"resync mechanism: {variant}, {integrations:,} Integrations, every {interval:g}s",
        "seconds_until_every_object_visited": round(warm - started, 1),
        "cpu_s_in_window": round(cpu_window, 2),
        "cpu_ms_per_1000_objects_per_pass": round(1000 * cpu_window / passes / (integrations / 1000), 1),
        "requests_starting": dict(starting.operator()),
        "writes_starting": starting.operator_writes(),
        "requests_in_window": dict(steady.operator()),
        "writes_in_window": steady.operator_writes(),
        "window_s": window,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--integrations", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--window", type=float, default=90)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.integrations, args.interval, args.window))
    for row in rows:
        print(json.dumps(row))
    write_results(rows, " ".join(["python -m bench.kopf_timers", *sys.argv[1:]]), update=True)


if __name__ == "__main__":
    main()
