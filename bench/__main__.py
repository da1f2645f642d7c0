"""`python -m bench`: throughput and memory of real sync runs on loopback, each against a baseline.

Every figure comes from this run on this machine:
* inbound  — S3 (moto) CSV → fake WalkMe: rows/s of a real `walkme-dic sync` subprocess and its
  peak RSS; baseline, in the same run: the raw pipeline (bench/raw_inbound.py: csv.reader → JSON
  batches of 100 → keep-alive POSTs with the sync's concurrency) to the same fake WalkMe, which runs
  in a process of its own so that it is not the limit measured; csv.reader alone for scale. The ratio
  compares the sync's whole process with the raw pipeline's own clock (after its imports); the
  ratio "as processes" times both as whole processes (interpreter start and imports included).
* outbound — fake WalkMe export (generated users, 100 MB and 1 GB of CSV; the fake in a process of
  its own) → S3 (moto), Azure (Azurite), GCS (gcp-storage-emulator) and SFTP (a private OpenSSH sshd,
  tests/fixtures/sshd.py): MB/s of a real `walkme-dic sync` against the raw client (boto3
  `upload_fileobj`, azure-storage-blob `upload_blob`, google-cloud-storage `upload_from_file`, paramiko
  `putfo`, default settings) uploading the same bytes; peak RSS of the sync. Another figure, the
  connector alone, is our store's AtomicWriter uploading the same bytes in 1 MiB writes (what the
  engine's encoder feeds it), against the raw client: the upload path without the WalkMe source in front.
  A second baseline, the source ceiling, is the same export read alone by our WalkMe client: an
  export can go no faster than its source, and the fake WalkMe serves JSON at a few MB/s. It is
  reported against the export loop's own clock and, like the sync, as a whole process.
* salesforce — WalkMe users upserted into the fake Salesforce org by external id: API calls made
  (Bulk API 2.0 ingest job, upload, close, polls, results) against one call per record.
* operator — see bench/operator_scale.py.
Each sync case and its baseline run as alternating pairs (--pairs, default 3; bench/pairs.py): the figures are
the medians, with the spread (min to max) of the seconds and of the ratio within each pair. The inbound case runs
three ways: a fresh account, a re-import into an account that already holds the users, and a file with 1 %
duplicate keys and 1 % rejected rows.
Results are printed as a table and written to bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from azure.storage.blob import BlobServiceClient, ContainerClient
from moto.server import ThreadedMotoServer

from bench.operator_scale import measure, print_requests
from bench.pairs import alternating, ratios, spread
from bench.results import RESULTS, write_results
from tests.fakes.salesforce import FakeSalesforce
from tests.fixtures.azurite import Azurite, running_azurite
from tests.fixtures.gcs import gcs_client, running_gcs_emulator
from tests.fixtures.servers import free_port
from tests.fixtures.sshd import Sshd, running_sshd, sshd_missing
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.connectors.registry import open_file_store
from walkme_dic.egress import POLICY_ENV
from walkme_dic.sync.credentials import load_credentials
from walkme_dic_dev.egress import LOOPBACK_JSON
from walkme_dic_dev.fake_walkme import FakeWalkMe

BUCKET = "bench"
CLIENT, SECRET, TOKEN = "bench-client", "bench-secret", "bench-token"
PAIRS = 3  # each case and its baseline, alternated (bench/pairs.py)
SYNC_CONCURRENCY = 8  # the WalkMe Connection's maxInFlight in these benchmarks (the default is 4)


def make_csv(rows: int, *, dirty: bool = False) -> tuple[bytes, int, int]:
    """The users file, how many users a sync applies from it and how many rows it rejects. ``dirty``: 1 % of
    the rows repeat the key of the row before (the last wins) and 1 % have seats "n/a" (seats is a number)."""
    out = io.StringIO()
    out.write("id,plan,seats,since,active\n")
    applied = refused = 0
    for index in range(rows):
        repeated, rejected = dirty and index % 100 == 99, dirty and index % 100 == 49
        key, seats = f"user-{index - 1 if repeated else index}", "n/a" if rejected else index % 500
        out.write(f"{key},plan-{index % 7},{seats},2024-{index % 12 + 1:02d}-01,{'true' if index % 9 else 'false'}\n")
        applied += not (repeated or rejected)
        refused += rejected
    return out.getvalue().encode(), applied, refused


BYTES_PER_USER = 61  # one exported CSV row of SyntheticUsers: user_id,email,last_seen


def s3_connection(s3_url: str) -> dict[str, Any]:
    return {"s3": {"bucket": BUCKET, "region": "us-east-1", "endpointUrl": s3_url,
                   "auth": {"secretRef": {"name": "a"}}}}


def azure_connection(azurite: Azurite) -> dict[str, Any]:
    return {"azureBlob": {"accountUrl": azurite.account_url, "container": BUCKET,
                          "auth": {"secretRef": {"name": "z", "key": "connectionString"}}}}


def sftp_connection(sshd: Sshd) -> dict[str, Any]:
    return {"sftp": {"host": sshd.host, "port": sshd.port, "username": sshd.username, "path": str(sshd.root),
                     "hostKeys": sshd.known_hosts.splitlines(), "auth": {"secretRef": {"name": "s"}}}}


def request_for(direction: str, connection: dict[str, Any], walkme_url: str, run_id: str) -> dict[str, Any]:
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
    return sync_request(spec, connection, walkme_url, run_id)


def sync_request(spec: dict[str, Any], connection: dict[str, Any], walkme_url: str, run_id: str) -> dict[str, Any]:
    """The resolved request a sync Job gets, forced so that every case runs."""
    walkme = {"walkme": {"apiUrl": walkme_url, "insightsExportUrl": walkme_url,
                         "auth": {"secretRef": {"name": "w"}}, "maxInFlight": SYNC_CONCURRENCY}}
    return {"integration": {"namespace": "bench", "name": "bench"}, "runId": run_id, "spec": spec,
            "connection": connection, "walkmeConnection": walkme, "force": True}


def salesforce_request(salesforce_url: str, walkme_url: str) -> dict[str, Any]:
    """WalkMe users upserted into Salesforce Contacts by external id (Bulk API 2.0 at this size)."""
    spec = {"direction": "Outbound", "connectionRef": {"name": "a"}, "walkmeConnectionRef": {"name": "w"},
            "source": {"walkme": {"dataset": "users"}},
            "destination": {"salesforce": {"object": "Contact", "operation": "upsert",
                                           "externalIdField": "WalkMe_Id__c"}},
            "mapping": {"key": {"source": "userId", "destination": "WalkMe_Id__c"},
                        "fields": [{"source": "email", "destination": "LastName"}]}}
    connection = {"salesforce": {"instanceUrl": salesforce_url, "auth": {"secretRef": {"name": "s"}}}}
    return sync_request(spec, connection, walkme_url, "sf")


# ru_maxrss of a child starts at the parent's RSS when it forks; VmHWM belongs to the exec'd process alone.
SELF_RSS = ("import sys, atexit; atexit.register(lambda: sys.stderr.write(next(l for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')))); from walkme_dic.cli import main; sys.exit(main(sys.argv[1:]))")


# BENCH_SYNC_PYTHONPATH=<an older checkout's operator/ dir> measures that version's sync ("before" figures)
# against this bench, its baselines and its fakes.
SYNC_CODE = {"PYTHONPATH": os.environ["BENCH_SYNC_PYTHONPATH"]} if os.environ.get("BENCH_SYNC_PYTHONPATH") else {}


def run_sync(request: dict[str, Any], credentials: Path) -> dict[str, Any]:
    """A real `walkme-dic sync` subprocess; its own peak RSS is reported by the process itself at exit."""
    with tempfile.TemporaryDirectory() as work:
        result_path = Path(work) / "result.json"
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", SELF_RSS, "sync", "--credentials", str(credentials), "--result", str(result_path)],
            env={**os.environ, "WALKME_DIC_REQUEST": json.dumps(request), POLICY_ENV: LOOPBACK_JSON, **SYNC_CODE},
            capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        if completed.returncode != 0:
            raise SystemExit(f"sync failed: {result_path.read_text() if result_path.exists() else completed.stderr}")
        result = json.loads(result_path.read_text())
    peak_kib = int(next(line.split()[1] for line in completed.stderr.splitlines() if line.startswith("VmHWM")))
    return {"seconds": seconds, "result": result, "peak_rss_mb": peak_kib / 1024, "cpu_busy": cpu / seconds}


EXPORT_ONLY = ("import json, sys, time; from walkme_dic.api.connection import WalkMeProvider; "
               "from walkme_dic.connectors.walkme import WalkMeClient; "
               "client = WalkMeClient(WalkMeProvider.model_validate(json.loads(sys.argv[1])), "
               "{'clientId': sys.argv[2], 'clientSecret': sys.argv[3]}); started = time.perf_counter(); "
               "count = sum(1 for _ in client.export('users', since=None)); "
               "print(count, time.perf_counter() - started)")


def export_alone(walkme_url: str) -> tuple[int, float, float]:
    """(records, seconds, process seconds) of the WalkMe export read by our client with nothing done to the
    records: the ceiling the source puts on any outbound run, in its own process like the sync. ``seconds``
    is the export loop alone; ``process seconds`` the whole process, interpreter start and imports included,
    as the sync's own figure is."""
    provider = json.dumps({"apiUrl": walkme_url, "insightsExportUrl": walkme_url, "auth": {"secretRef": {"name": "w"}}})
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", EXPORT_ONLY, provider, CLIENT, SECRET],
                               capture_output=True, text=True, check=True)
    process = time.perf_counter() - started
    count, seconds = completed.stdout.split()
    return int(count), float(seconds), process


def write_credentials(root: Path, external: dict[str, str]) -> Path:
    for role, values in {"external": external, "walkme": {"clientId": CLIENT, "clientSecret": SECRET},
                         "integration-token": {"token": TOKEN}}.items():
        (root / role).mkdir(parents=True, exist_ok=True)
        for key, value in values.items():
            (root / role / key).write_text(value)
    return root


@dataclass
class Bench:
    """The loopback servers every case runs against, and the credential directories for each store."""

    s3_url: str
    azurite: Azurite
    walkme: FakeWalkMe
    workdir: Path
    gcs_url: str = ""
    sshd: Sshd | None = None

    @property
    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1", aws_access_key_id="k",
                            aws_secret_access_key="s")

    @property
    def container(self) -> ContainerClient:
        return BlobServiceClient.from_connection_string(self.azurite.connection_string).get_container_client(BUCKET)

    def credentials(self, store: str) -> Path:
        if store == "sftp":
            assert self.sshd is not None
            return write_credentials(self.workdir / store, {"privateKey": self.sshd.keys["ed25519"]})
        external = {"s3": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                    "azure": {"connectionString": self.azurite.connection_string}, "gcs": {}}[store]
        return write_credentials(self.workdir / store, external)

    def connection(self, store: str) -> dict[str, Any]:
        if store == "sftp":
            assert self.sshd is not None
            return sftp_connection(self.sshd)
        if store == "gcs":
            return {"gcs": {"bucket": BUCKET, "endpointUrl": self.gcs_url, "auth": {"anonymous": True}}}
        return s3_connection(self.s3_url) if store == "s3" else azure_connection(self.azurite)

    def raw_upload(self, store: str, path: str, size: int) -> tuple[str, float]:
        """(baseline, seconds) of the store's own client uploading a copy of the exported ``path``."""
        if store == "sftp":
            return "raw paramiko putfo of the same bytes (pipelined, new connection)", self.raw_sftp_upload(path)
        with tempfile.TemporaryFile() as copy:
            if store == "s3":
                self.s3.download_fileobj(BUCKET, path, copy)
                copy.seek(0)
                started = time.perf_counter()
                self.s3.upload_fileobj(copy, BUCKET, "raw/copy.csv")
                return "raw boto3 upload_fileobj of the same bytes", time.perf_counter() - started
            if store == "azure":
                self.container.download_blob(path).readinto(copy)
                copy.seek(0)
                started = time.perf_counter()
                self.container.upload_blob("raw/copy.csv", copy, length=size, overwrite=True)
                return "raw azure-storage-blob upload_blob of the same bytes", time.perf_counter() - started
            bucket = gcs_client(self.gcs_url).bucket(BUCKET)
            bucket.blob(path).download_to_file(copy)
            copy.seek(0)
            started = time.perf_counter()
            bucket.blob("raw/copy.csv").upload_from_file(copy, size=size)
            return "raw google-cloud-storage upload_from_file of the same bytes", time.perf_counter() - started

    def connector_upload(self, store: str, path: str) -> float:
        """Seconds our store's AtomicWriter takes to upload a copy of ``path`` fed in 1 MiB writes."""
        connection = ConnectionSpec.model_validate(self.connection(store))
        files = open_file_store(connection, load_credentials(self.credentials(store)).role("external"))
        with tempfile.TemporaryFile() as copy:
            with files.open_read(path) as exported:
                shutil.copyfileobj(exported, copy, 1024 * 1024)
            copy.seek(0)
            started = time.perf_counter()
            writer = files.open_write("raw/connector-copy.csv")
            while chunk := copy.read(1024 * 1024):
                writer.write(chunk)
            writer.commit()
            return time.perf_counter() - started

    def raw_sftp_upload(self, path: str) -> float:
        """Seconds paramiko's own putfo (pipelined writes, fresh connection) takes to upload a copy of ``path``."""
        import paramiko

        assert self.sshd is not None
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        for line in self.sshd.known_hosts.splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
            assert entry is not None and entry.key is not None
            client.get_host_keys().add(entry.hostnames[0], entry.key.get_name(), entry.key)
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(self.sshd.keys["ed25519"]))
        with (self.sshd.root / path).open("rb") as copy:
            started = time.perf_counter()
            client.connect(self.sshd.host, self.sshd.port, self.sshd.username, pkey=key, look_for_keys=False,
                           allow_agent=False)
            client.open_sftp().putfo(copy, str(self.sshd.root / "raw-copy.csv"))
            seconds = time.perf_counter() - started
        client.close()
        return seconds


@contextlib.contextmanager
def walkme_process(*options: str, keep_users: bool = False) -> Iterator[str]:
    """The fake WalkMe in a process of its own (validating; keeping no users unless ``keep_users``), so that
    neither the fake's CPU nor moto's (in this process) is counted against the client measured; yields its URL."""
    forget = [] if keep_users else ["--forget-users"]
    process = subprocess.Popen([sys.executable, "-m", "walkme_dic_dev.fake_walkme", "--client",
                                f"{CLIENT}:{SECRET}", "--token", f"{TOKEN}:uuid", *forget, *options],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def loopback_servers(*, keep_users: bool = True) -> Iterator[tuple[str, FakeWalkMe]]:
    """moto's S3 and the fake WalkMe in this process on loopback ports (keeping no users unless ``keep_users``);
    yields (the S3 endpoint URL, the fake WalkMe)."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    walkme = FakeWalkMe(clients={CLIENT: SECRET}, integration_tokens={TOKEN: "uuid"})
    walkme.keep_users = keep_users
    walkme.start()
    try:
        yield f"http://127.0.0.1:{port}", walkme
    finally:
        walkme.stop()
        server.stop()


def raw_pipeline(s3_url: str, walkme_url: str, concurrency: int) -> tuple[int, float, float, float]:
    """(rows, seconds, process seconds, peak RSS MB) of bench/raw_inbound.py posting users.csv to ``walkme_url``;
    ``seconds`` from its own clock (after its imports), ``process seconds`` the whole process, as the sync's."""
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "bench.raw_inbound", s3_url, BUCKET, "users.csv", walkme_url,
                                CLIENT, SECRET, TOKEN, str(concurrency)], capture_output=True, text=True, check=True)
    process = time.perf_counter() - started
    rows, seconds, peak_kib = completed.stdout.split()
    return int(rows), float(seconds), process, int(peak_kib) / 1024


INBOUND_VARIANTS = {
    "fresh": "a fresh account each run",
    "reimport": "an account that already holds the users (a re-import of the same file)",
    "dirty": "1 % duplicate keys and 1 % rejected rows, a fresh account each run",
}


def bench_inbound(rows: int, bench: Bench, variant: str = "fresh", pairs: int = PAIRS) -> dict[str, Any]:
    """The sync and the raw pipeline (same file, same concurrency, each its own fake WalkMe process) as
    alternating pairs; and csv.reader alone for scale. For a re-import, each side first imports the file once
    (untimed) into an account of its own that keeps the users, then every run of the pairs imports it again."""
    data, applied, rejected = make_csv(rows, dirty=variant == "dirty")
    bench.s3.put_object(Bucket=BUCKET, Key="users.csv", Body=data)
    started = time.perf_counter()
    parsed = sum(1 for _ in csv.reader(io.StringIO(data.decode())))
    parse_only = time.perf_counter() - started
    del data
    keep = variant == "reimport"
    with contextlib.ExitStack() as kept:
        accounts = {side: kept.enter_context(walkme_process(keep_users=True)) for side in ("raw", "sync")} \
            if keep else {}

        def account(side: str) -> contextlib.AbstractContextManager[str]:
            return contextlib.nullcontext(accounts[side]) if keep else walkme_process()

        def raw() -> dict[str, Any]:
            with account("raw") as url:
                sent, seconds, process, peak = raw_pipeline(bench.s3_url, url, SYNC_CONCURRENCY)
            assert sent == rows, sent
            return {"seconds": seconds, "process_seconds": process, "peak_rss_mb": peak}

        def sync() -> dict[str, Any]:
            with account("sync") as url:
                measured = run_sync(request_for("Inbound", bench.connection("s3"), url, f"in-{rows}"),
                                    bench.credentials("s3"))
            assert measured["result"]["rowsWritten"] == applied, measured["result"]
            assert measured["result"]["rowsRejected"] == rejected, measured["result"]
            return measured

        if keep:
            raw(), sync()  # the accounts now hold every user
        measured = alternating(sync, raw, pairs)
    return {"case": f"inbound S3 CSV → WalkMe, {rows:,} rows, {INBOUND_VARIANTS[variant]}", "rows": rows,
            "rows_applied": applied, "pairs": pairs,
            "seconds": spread([m["seconds"] for m, _ in measured], 2),
            "rows_per_s": round(rows / statistics.median(m["seconds"] for m, _ in measured)),
            "baseline": f"raw pipeline (bench/raw_inbound.py): csv.reader → JSON batches of 100 → keep-alive POSTs, "
                        f"{SYNC_CONCURRENCY} in flight, to a fake WalkMe process like the sync's (it sends every row, "
                        "validating nothing)",
            "baseline_seconds": spread([b["seconds"] for _, b in measured], 2),
            "baseline_rows_per_s": round(rows / statistics.median(b["seconds"] for _, b in measured)),
            "ratio_spread": ratios(measured, lambda m, b: b["seconds"] / m["seconds"]),
            "ratio": ratios(measured, lambda m, b: b["seconds"] / m["seconds"])["median"],
            "ratio_as_processes": ratios(measured, lambda m, b: b["process_seconds"] / m["seconds"])["median"],
            "baseline_peak_rss_mb": round(max(b["peak_rss_mb"] for _, b in measured), 1),
            "parse_only_rows_per_s": round(parsed / parse_only),
            "peak_rss_mb": round(max(m["peak_rss_mb"] for m, _ in measured), 1),
            "sync_cpu_busy": round(statistics.median(m["cpu_busy"] for m, _ in measured), 2)}


def bench_outbound(store: str, megabytes: int, bench: Bench, pairs: int = PAIRS) -> dict[str, Any]:
    """A real export of ~``megabytes`` MB of CSV and the raw SDK uploading the very same bytes, as alternating
    pairs (the sync first in the first pair: the raw upload needs its size); the source ceiling and the
    connector alone once each, after the pairs."""
    users = megabytes * 1_000_000 // BYTES_PER_USER
    sizes: list[int] = []
    first = f"out/out-{store}-{megabytes}-0.csv"
    with walkme_process("--synthetic-users", str(users)) as walkme_url:  # not sharing moto's process

        def sync() -> dict[str, Any]:
            run_id = f"out-{store}-{megabytes}-{len(sizes)}"
            measured = run_sync(request_for("Outbound", bench.connection(store), walkme_url, run_id),
                                bench.credentials(store))
            assert measured["result"]["rowsWritten"] == users, measured["result"]
            sizes.append(measured["result"]["bytes"])
            return measured

        def raw() -> float:  # a copy of the first run's file
            return bench.raw_upload(store, first, sizes[0])[1]

        measured = alternating(sync, raw, pairs)
        exported, source, source_process = export_alone(walkme_url)
    assert exported == users and len(set(sizes)) == 1, (exported, sizes)
    size = sizes[0]
    baseline = bench.raw_upload(store, first, size)[0]
    connector = bench.connector_upload(store, first)
    mb = size / 1e6
    seconds, raw_seconds = statistics.median(m["seconds"] for m, _ in measured), statistics.median(
        raw for _, raw in measured)
    target = {"s3": "S3", "azure": "Azure Blob", "gcs": "GCS", "sftp": "SFTP"}[store]
    return {"case": f"outbound WalkMe → {target} CSV, {mb:,.0f} MB ({users:,} users)", "rows": users,
            "bytes": size, "pairs": pairs, "seconds": spread([m["seconds"] for m, _ in measured], 2),
            "mb_per_s": round(mb / seconds, 1), "baseline": baseline,
            "baseline_seconds": spread([raw for _, raw in measured], 2),
            "baseline_mb_per_s": round(mb / raw_seconds, 1),
            "ratio_spread": ratios(measured, lambda m, raw: raw / m["seconds"]),
            "ratio": ratios(measured, lambda m, raw: raw / m["seconds"])["median"],
            "peak_rss_mb": round(max(m["peak_rss_mb"] for m, _ in measured), 1),
            "sync_cpu_busy": round(statistics.median(m["cpu_busy"] for m, _ in measured), 2),
            "source_ceiling": "the same WalkMe export read alone by our client (no mapping, no upload)",
            "source_ceiling_mb_per_s": round(mb / source, 1),
            "ratio_to_source_ceiling": round(source / seconds, 3),
            "source_process_mb_per_s": round(mb / source_process, 1),
            "ratio_to_source_process": round(source_process / seconds, 3),
            "connector_alone": "our store's AtomicWriter uploading the same bytes in 1 MiB writes",
            "connector_alone_mb_per_s": round(mb / connector, 1), "connector_ratio": round(raw_seconds / connector, 3)}


def bench_salesforce(rows: int, bench: Bench) -> dict[str, Any]:
    """A real WalkMe → Salesforce upsert of ``rows`` records: API calls made against one call per record."""
    salesforce = FakeSalesforce({CLIENT: SECRET})
    salesforce.define("Contact", {"LastName": "string", "WalkMe_Id__c": "string"}, external_id="WalkMe_Id__c",
                      required=["LastName"], key_prefix="003")
    salesforce.start()
    try:
        bench.walkme.seed_synthetic_users(rows)
        credentials = write_credentials(bench.workdir / "salesforce", {"clientId": CLIENT, "clientSecret": SECRET})
        measured = run_sync(salesforce_request(salesforce.url, bench.walkme.url), credentials)
        assert measured["result"]["rowsWritten"] == rows, measured["result"]
        assert len(salesforce.records("Contact")) == rows
        calls = salesforce.api_calls
    finally:
        salesforce.stop()
    return {"case": f"outbound WalkMe → Salesforce upsert, {rows:,} records", "rows": rows,
            "seconds": round(measured["seconds"], 2), "rows_per_s": round(rows / measured["seconds"]),
            "api_calls": calls, "baseline": "one API call per record", "baseline_api_calls": rows,
            "ratio": round(calls / rows, 6), "peak_rss_mb": round(measured["peak_rss_mb"], 1),
            "sync_cpu_busy": round(measured["cpu_busy"], 2)}


def print_table(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if "seconds_until_all_ready" in row:
            ready = f"all Ready in {row['seconds_until_all_ready']}s" if row["seconds_until_all_ready"] else \
                f"every run finished in {row['seconds_until_all_runs_finished']}s, NOT all Ready " \
                f"({row['not_ready_after_their_run']})"
            print(f"{row['case']:<60} {ready} (objects created in {row['seconds_creating_objects']}s, every run "
                  f"started after {row['seconds_until_all_runs_started']}s), "
                  f"{row['requests_per_integration_in_window']} requests/Integration and {row['writes_in_window']} "
                  f"writes in {row['settle_window_s']:g}s of steady state, operator RSS {row['operator_rss_mb']} MB, "
                  f"CPU {row['operator_cpu_ms_per_integration']} ms per Integration")
            print_requests("roll-out", row["apiserver_requests_rollout"])
            print_requests(f"{row['settle_window_s']:g}s of steady state", row["apiserver_requests_in_window"])
            continue
        speed = f"{row['rows_per_s']:,} rows/s" if "rows_per_s" in row else f"{row['mb_per_s']} MB/s"
        if "ratio_as_processes" in row:
            speed += f" (as processes: {row['ratio_as_processes']})"
        source = (f"  vs source alone {row['ratio_to_source_ceiling']} (as a process too: "
                  f"{row['ratio_to_source_process']})") if "ratio_to_source_ceiling" in row else ""
        if "connector_ratio" in row:
            source += f"  connector alone {row['connector_alone_mb_per_s']} MB/s = {row['connector_ratio']} x raw"
        if "ratio_spread" in row:
            low, high = row["ratio_spread"]["min"], row["ratio_spread"]["max"]
            source = f" ({low} to {high} over {row['pairs']} pairs)" + source
        print(f"{row['case']:<60} {speed:>16}  ratio vs baseline {row['ratio']:>6}{source}  "
              f"peak RSS {row['peak_rss_mb']} MB  sync CPU busy {row['sync_cpu_busy']:.0%}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--inbound-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--inbound-variants", nargs="*", choices=list(INBOUND_VARIANTS), default=list(INBOUND_VARIANTS))
    parser.add_argument("--pairs", type=int, default=PAIRS, help="Alternating pairs of each case and its baseline.")
    parser.add_argument("--outbound-mb", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--salesforce-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--outbound-to", nargs="*", choices=["s3", "azure", "gcs", "sftp"],
                        default=["s3", "azure", "gcs", "sftp"])
    parser.add_argument("--operator-integrations", type=int, nargs="*", default=[2000],
                        help="Integrations in each operator case (e.g. 200 2000: CPU per Integration at both); "
                        "0 or none skips the operator case.")
    parser.add_argument("--operator-connections", type=int, default=None,
                        help="Connections the Integrations share (default: one per 10 Integrations).")
    parser.add_argument("--controller-manager-qps", type=int, default=None,
                        help="kube-controller-manager --kube-api-qps (default: its own, 20), so that its Job "
                        "controller does not set the pace of a roll-out of thousands of runs.")
    parser.add_argument("--settle", type=float, default=30, help="Seconds of steady state to count requests in.")
    parser.add_argument("--label", default="", help="Appended to each case's name, e.g. 'before: main' with "
                        "BENCH_SYNC_PYTHONPATH, so that such runs sit next to the current code's in results.json.")
    parser.add_argument("--update", action="store_true",
                        help="Keep the other cases in bench/results.json; replace only the ones run now.")
    args = parser.parse_args()
    rows = []
    with loopback_servers() as (s3_url, walkme):
        os.environ["BENCH_S3_URL"] = s3_url
        needs_sshd = "sftp" in args.outbound_to and bool(args.outbound_mb)
        if needs_sshd and sshd_missing():
            raise SystemExit(sshd_missing())
        with running_azurite() as azurite, running_gcs_emulator(own_process=True) as gcs_url, \
                running_sshd() if needs_sshd else contextlib.nullcontext() as sshd, \
                tempfile.TemporaryDirectory() as tmp:
            bench = Bench(s3_url, azurite, walkme, Path(tmp), gcs_url=gcs_url, sshd=sshd)
            gcs_client(gcs_url).create_bucket(BUCKET)
            bench.s3.create_bucket(Bucket=BUCKET)
            bench.s3.create_bucket(Bucket="scale-bucket")
            bench.container.create_container()
            rows += [bench_inbound(n, bench, variant, args.pairs) for n in args.inbound_rows
                     for variant in args.inbound_variants]
            rows += [bench_outbound(store, mb, bench, args.pairs) for mb in args.outbound_mb
                     for store in args.outbound_to]
            rows += [bench_salesforce(n, bench) for n in args.salesforce_rows]
        rows += [asyncio.run(measure(n, args.operator_connections or max(1, n // 10), args.settle,
                                     args.controller_manager_qps)) for n in args.operator_integrations if n]
    for row in rows:
        row["case"] += f" [{args.label}]" if args.label else ""
    print_table(rows)
    prefix = [f"{name}={os.environ[name]}" for name in ("BENCH_SYNC_PYTHONPATH", "BENCH_OPERATOR_PYTHONPATH")
              if os.environ.get(name)]
    write_results(rows, " ".join([*prefix, "python -m bench", *sys.argv[1:]]), update=args.update)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
