"""Inbound change detection (issue 23): a re-import with 1 % of its users changed against a full send of the same file.

`python -m bench.change_detection [--users 1000000] [--pairs 3] [--rss-users 10000000]` puts a CSV of that
many users (bench/__main__.py's make_csv) on moto's S3 and runs real `walkme-dic sync` subprocesses against
the fake WalkMe (in this process, keeping no users; it counts the requests it answers). One Integration
(its own uid) keeps change detection on; the other sends every user (changeDetection: false). The file
alternates between two versions that differ in 1 % of the users (every 100th user's plan), so every run of
the first Integration after its untimed warm-up run sends exactly the 1 % that changed. In ``pairs``
alternating pairs (the order flips each pair) both import the same file; printed and recorded are the
median and spread (min to max) of the WalkMe requests and the wall time of each, and of the per-pair
ratios. Between the two runs of each pair, the floor: a dry run of the full send's Integration (the file
read, mapped and spooled, its duplicate keys found, nothing sent), which no run that sends can beat. With
``--rss-users`` the peak RSS of a change-detection run (and of its warm-up full send, which writes the
first state) at that many users. ``--walkme-latency S`` makes the fake WalkMe answer each request S seconds
late (default its own 2 ms, a loopback call): a real WalkMe is a WAN round trip away, and each request a run
leaves out saves one; the case is then recorded under its own name. Records the cases in bench/results.json
(others kept).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import boto3

from bench.__main__ import (
    BUCKET,
    loopback_servers,
    make_csv,
    request_for,
    run_sync,
    s3_connection,
    write_credentials,
)
from bench.pairs import spread
from bench.results import write_results
from walkme_dic_dev.fake_walkme import FakeWalkMe

USER_DATA = "/public/v1/user/data"
CHANGED_EVERY = 100  # 1 % of the users


def versions(users: int) -> tuple[bytes, bytes]:
    """The file, and the same file with every 100th user's plan changed."""
    original, _, _ = make_csv(users)
    lines = original.split(b"\n")
    for index in range(1, len(lines) - 1, CHANGED_EVERY):  # line 0 is the header
        user, _, rest = lines[index].split(b",", 2)
        lines[index] = b",".join((user, b"plan-changed", rest))
    return original, b"\n".join(lines)


class Runs:
    """Sync runs of two Integrations over one S3 file, counting the fake WalkMe's requests."""

    def __init__(self, s3_url: str, walkme: FakeWalkMe, credentials: Path) -> None:
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="k",
                               aws_secret_access_key="s")
        self.s3_url, self.walkme, self.credentials = s3_url, walkme, credentials
        self.uids = {True: str(uuid.uuid4()), False: str(uuid.uuid4())}

    def put(self, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key="users.csv", Body=body)

    def run(self, detecting: bool, *, dry_run: bool = False) -> dict[str, Any]:
        request = request_for("Inbound", s3_connection(self.s3_url), self.walkme.url, f"cd-{uuid.uuid4().hex[:6]}")
        request["integration"]["uid"] = self.uids[detecting]
        request["spec"].update(changeDetection=detecting, dryRun=dry_run)
        before = self.walkme.requests[USER_DATA]
        measured = run_sync(request, self.credentials)
        assert measured["result"]["result"] == "Succeeded", measured["result"]
        return {"seconds": measured["seconds"], "requests": self.walkme.requests[USER_DATA] - before,
                "sent": measured["result"].get("sent"), "peak_rss_mb": measured["peak_rss_mb"]}


def pairs(runs: Runs, users: int, count: int, *, late: bool = False) -> dict[str, Any]:
    """``late``: the fake WalkMe's latency was set (--walkme-latency), said in the case's name."""
    latency = runs.walkme.latency
    original, changed = versions(users)
    runs.put(original)
    runs.run(True)  # warm-up: the first state
    full: list[dict[str, Any]] = []
    detected: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    for pair in range(count):
        runs.put(changed if pair % 2 == 0 else original)
        first, second = (True, False) if pair % 2 == 0 else (False, True)
        (detected if first else full).append(runs.run(first))
        floor.append(runs.run(False, dry_run=True))  # between the two: drift falls on it as on them
        (detected if second else full).append(runs.run(second))
    expected = -(-users // CHANGED_EVERY)
    assert all(run["sent"] == expected for run in detected), detected
    return {
        "case": f"inbound change detection: {users:,} users, 1 % changed, against a full send of the same file"
                + (f", WalkMe answering {latency * 1000:g} ms late" if late else ""),
        "users": users, "walkme_latency_seconds": latency, "changed_users": expected, "pairs": count,
        "full_send": {"walkme_requests": spread([r["requests"] for r in full], 0),
                      "seconds": spread([r["seconds"] for r in full], 2),
                      "peak_rss_mb": spread([r["peak_rss_mb"] for r in full], 1)},
        "change_detection": {"walkme_requests": spread([r["requests"] for r in detected], 0),
                             "seconds": spread([r["seconds"] for r in detected], 2),
                             "peak_rss_mb": spread([r["peak_rss_mb"] for r in detected], 1)},
        "ratio_requests": spread([d["requests"] / f["requests"] for d, f in zip(detected, full, strict=True)], 4),
        "ratio_seconds": spread([d["seconds"] / f["seconds"] for d, f in zip(detected, full, strict=True)], 3),
        "targets": "requests <= 1.2 % and wall time <= 0.25x of a full send",
        "floor": "a dry run of the full send's Integration (changeDetection: false): the process, the file read, "
                 "mapped, spooled and its duplicate keys found, nothing sent — what every send does before sending",
        "floor_seconds": spread([r["seconds"] for r in floor], 2),
        "ratio_floor_to_full_send": spread([f["seconds"] / s["seconds"] for f, s in zip(floor, full, strict=True)],
                                           3),
        "ratio_change_detection_to_floor": spread(
            [d["seconds"] / f["seconds"] for d, f in zip(detected, floor, strict=True)], 3),
    }


def rss(runs: Runs, users: int) -> dict[str, Any]:
    original, changed = versions(users)
    runs.uids[True] = str(uuid.uuid4())
    runs.put(original)
    del original
    first = runs.run(True)
    runs.put(changed)
    del changed
    second = runs.run(True)
    return {"case": f"inbound change detection: peak RSS at {users:,} users", "users": users,
            "first_run_full_send": first, "change_run_1_percent": second, "target": "peak RSS <= 150 MB"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.change_detection", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rss-users", type=int, default=0, help="0 skips the RSS case.")
    parser.add_argument("--walkme-latency", type=float, default=None,
                        help="Seconds the fake WalkMe adds to every answer (default: its own).")
    args = parser.parse_args()
    rows = []
    with loopback_servers(keep_users=False) as (s3_url, walkme), tempfile.TemporaryDirectory() as tmp:
        credentials = write_credentials(Path(tmp), {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
        if args.walkme_latency is not None:
            walkme.latency = args.walkme_latency
        runs = Runs(s3_url, walkme, credentials)
        runs.s3.create_bucket(Bucket=BUCKET)
        if args.pairs:
            rows.append(pairs(runs, args.users, args.pairs, late=args.walkme_latency is not None))
        if args.rss_users:
            rows.append(rss(runs, args.rss_users))
    for row in rows:
        print(row)
    write_results(rows, " ".join(["python -m bench.change_detection", *sys.argv[1:]]), update=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
