"""`python -m bench`: throughput and memory of real sync runs on loopback, each against a baseline.

Every figure comes from this run on this machine:
* inbound  — S3 (moto) CSV → fake WalkMe: rows/s of a real `walkme-dic sync` subprocess and its
  peak RSS; baseline: the same file parsed by Python's csv module alone (read + split, no mapping,
  no sending) — the floor any CSV-based importer starts from.
* outbound — fake WalkMe export → S3 (moto) CSV: MB/s of a real `walkme-dic sync` against raw
  boto3 `upload_fileobj` of the same bytes; peak RSS of the sync process.
Results are printed as a table and written to bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from bench.operator_scale import measure
from tests.fixtures.servers import free_port
from walkme_dic.devcluster.fake_walkme import FakeWalkMe

RESULTS = Path(__file__).with_name("results.json")
BUCKET = "bench"
CLIENT, SECRET, TOKEN = "bench-client", "bench-secret", "bench-token"


def make_csv(rows: int) -> bytes:
    out = io.StringIO()
    out.write("id,plan,seats,since,active\n")
    for index in range(rows):
        out.write(f"user-{index},plan-{index % 7},{index % 500},2024-{index % 12 + 1:02d}-01,"
                  f"{'true' if index % 9 else 'false'}\n")
    return out.getvalue().encode()


def request_for(direction: str, s3_url: str, walkme_url: str, run_id: str) -> dict[str, Any]:
    walkme = {"walkme": {"apiUrl": walkme_url, "auth": {"secretRef": {"name": "w"}}}}
    s3 = {"s3": {"bucket": BUCKET, "region": "us-east-1", "endpointUrl": s3_url, "auth": {"secretRef": {"name": "a"}}}}
    if direction == "Inbound":
        spec = {"direction": "Inbound", "connectionRef": {"name": "a"}, "walkmeConnectionRef": {"name": "w"},
                "source": {"file": {"path": "users.csv"}},
                "destination": {"walkme": {"integrationTokenSecretRef": {"name": "t", "key": "token"},
                                           "userIdProperty": "uuid"}},
                "mapping": {"key": {"source": "id", "destination": "uuid"},
                            "fields": [{"source": "plan", "destination": "plan"},
                                       {"source": "seats", "destination": "seats", "type": "number"},
                                       {"source": "since", "destination": "since", "type": "date"}],
                            "activeField": "active"}}
    else:
        spec = {"direction": "Outbound", "connectionRef": {"name": "a"}, "walkmeConnectionRef": {"name": "w"},
                "source": {"walkme": {"dataset": "users"}}, "destination": {"file": {"path": f"out/{run_id}.csv"}},
                "mapping": {"key": {"source": "userId", "destination": "user_id"},
                            "fields": [{"source": "email", "destination": "email"},
                                       {"source": "lastSeen", "destination": "last_seen"}]}}
    return {"integration": {"namespace": "bench", "name": "bench"}, "runId": run_id, "spec": spec,
            "connection": s3, "walkmeConnection": walkme, "force": True}


# ru_maxrss of a child starts at the parent's RSS when it forks; VmHWM belongs to the exec'd process alone.
SELF_RSS = ("import sys, atexit; atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')))); from walkme_dic.cli import main; sys.exit(main(sys.argv[1:]))")


def run_sync(request: dict[str, Any], credentials: Path) -> dict[str, Any]:
    """A real `walkme-dic sync` subprocess; its own peak RSS is reported by the process itself at exit."""
    with tempfile.TemporaryDirectory() as work:
        result_path = Path(work) / "result.json"
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", SELF_RSS, "sync", "--credentials", str(credentials), "--result", str(result_path)],
            env={**os.environ, "WALKME_DIC_REQUEST": json.dumps(request)}, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if completed.returncode != 0:
            raise SystemExit(f"sync failed: {result_path.read_text() if result_path.exists() else completed.stderr}")
        result = json.loads(result_path.read_text())
    peak_kib = int(next(line.split()[1] for line in completed.stderr.splitlines() if line.startswith("VmHWM")))
    return {"seconds": seconds, "result": result, "peak_rss_mb": peak_kib / 1024}


def write_credentials(root: Path) -> Path:
    for role, values in {"external": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                         "walkme": {"clientId": CLIENT, "clientSecret": SECRET},
                         "integration-token": {"token": TOKEN}}.items():
        (root / role).mkdir(parents=True, exist_ok=True)
        for key, value in values.items():
            (root / role / key).write_text(value)
    return root


def bench_inbound(rows: int, s3: Any, s3_url: str, walkme: FakeWalkMe, credentials: Path) -> dict[str, Any]:
    data = make_csv(rows)
    s3.put_object(Bucket=BUCKET, Key="users.csv", Body=data)
    started = time.perf_counter()
    parsed = sum(1 for _ in csv.reader(io.StringIO(data.decode())))
    baseline = time.perf_counter() - started
    walkme.attributes.clear()
    measured = run_sync(request_for("Inbound", s3_url, walkme.url, f"in-{rows}"), credentials)
    assert measured["result"]["rowsWritten"] == rows, measured["result"]
    return {"case": f"inbound S3 CSV → WalkMe, {rows:,} rows", "rows": rows, "bytes": len(data),
            "seconds": round(measured["seconds"], 2), "rows_per_s": round(rows / measured["seconds"]),
            "baseline": "csv.reader parse only", "baseline_rows_per_s": round(parsed / baseline),
            "ratio": round((rows / measured["seconds"]) / (parsed / baseline), 3),
            "peak_rss_mb": round(measured["peak_rss_mb"], 1), "api_calls": walkme.requests["/public/v1/user/data"]}


def bench_outbound(users: int, s3: Any, s3_url: str, walkme: FakeWalkMe, credentials: Path) -> dict[str, Any]:
    walkme.datasets["users"] = [
        {"userId": f"user-{i}", "email": f"user{i}@acme.example", "lastSeen": "2026-11-20T10:00:00Z",
         "updatedAt": "2026-11-20T10:00:00Z"} for i in range(users)]
    measured = run_sync(request_for("Outbound", s3_url, walkme.url, f"out-{users}"), credentials)
    size = measured["result"]["bytes"]
    payload = s3.get_object(Bucket=BUCKET, Key=f"out/out-{users}.csv")["Body"].read()
    started = time.perf_counter()
    s3.upload_fileobj(io.BytesIO(payload), BUCKET, "raw/copy.csv")
    raw = time.perf_counter() - started
    mb = size / 1e6
    return {"case": f"outbound WalkMe → S3 CSV, {users:,} users ({mb:.0f} MB)", "rows": users, "bytes": size,
            "seconds": round(measured["seconds"], 2), "mb_per_s": round(mb / measured["seconds"], 1),
            "baseline": "raw boto3 upload_fileobj of the same bytes", "baseline_mb_per_s": round(mb / raw, 1),
            "ratio": round(raw / measured["seconds"], 3), "peak_rss_mb": round(measured["peak_rss_mb"], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--inbound-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--outbound-users", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--operator-integrations", type=int, default=2000, help="0 skips the operator case.")
    parser.add_argument("--operator-connections", type=int, default=200)
    parser.add_argument("--settle", type=float, default=30, help="Seconds of steady state to count requests in.")
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3_url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="k",
                      aws_secret_access_key="s")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="scale-bucket")
    os.environ["BENCH_S3_URL"] = s3_url
    walkme = FakeWalkMe(clients={CLIENT: SECRET}, integration_tokens={TOKEN: "uuid"})
    walkme.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            credentials = write_credentials(Path(tmp))
            rows += [bench_inbound(n, s3, s3_url, walkme, credentials) for n in args.inbound_rows]
            rows += [bench_outbound(n, s3, s3_url, walkme, credentials) for n in args.outbound_users]
        if args.operator_integrations:
            rows.append(asyncio.run(measure(args.operator_integrations, args.operator_connections, args.settle)))
    finally:
        walkme.stop()
        server.stop()
    for row in rows:
        if "seconds_until_all_ready" in row:
            print(f"{row['case']:<55} all Ready in {row['seconds_until_all_ready']}s, "
                  f"{row['requests_per_integration_in_window']} requests/Integration and {row['writes_in_window']} "
                  f"writes in {row['settle_window_s']:g}s of steady state, operator RSS {row['operator_rss_mb']} MB")
            continue
        speed = f"{row['rows_per_s']:,} rows/s" if "rows_per_s" in row else f"{row['mb_per_s']} MB/s"
        print(f"{row['case']:<55} {speed:>18}  ratio vs baseline {row['ratio']:>6}  peak RSS {row['peak_rss_mb']} MB")
    RESULTS.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                   "results": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
