"""The raw pipeline an inbound sync is measured against: no mapping, no validation, no bookkeeping.

`python -m bench.raw_inbound S3_URL BUCKET KEY WALKME_URL CLIENT SECRET TOKEN CONCURRENCY` streams the
CSV object from S3 through `csv.reader`, turns each row into a JSON object (the key column renamed to
the user id property), posts JSON batches of 100 on keep-alive connections with CONCURRENCY in flight,
and prints `rows seconds peak_rss_kib`. It is what a hand-written importer would do, and the floor the
sync's own work (typing, rejections, duplicates, narrowing, spooling) is added to.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from pathlib import Path

import boto3
import urllib3


def main(argv: list[str]) -> None:
    s3_url, bucket, key, walkme_url, client_id, secret, token, concurrency = argv
    started = time.perf_counter()
    http = urllib3.PoolManager(maxsize=int(concurrency) * 2)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = http.request("POST", f"{walkme_url}/accounts/connect/token", body=b"grant_type=client_credentials",
                          headers={"Authorization": f"Basic {basic}",
                                   "Content-Type": "application/x-www-form-urlencoded"})
    headers = {"Authorization": f"Bearer {json.loads(answer.data)['access_token']}",
               "Content-Type": "application/json"}
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id="k",
                      aws_secret_access_key="s")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    rows = csv.reader(io.TextIOWrapper(io.BufferedReader(body, buffer_size=1024 * 1024), encoding="utf-8",  # type: ignore[arg-type]
                                       newline=""))
    header = ["uuid", *next(rows)[1:]]

    def post(batch: list[list[str]]) -> int:
        data = json.dumps({"token": token, "data": [dict(zip(header, row, strict=True)) for row in batch]})
        response = http.request("POST", f"{walkme_url}/public/v1/user/data", body=data.encode(), headers=headers)
        if response.status != 200:
            raise SystemExit(f"WalkMe answered {response.status}: {response.data[:200]!r}")
        return len(batch)

    sent = 0
    pending: set[Future[int]] = set()
    with ThreadPoolExecutor(max_workers=int(concurrency)) as pool:
        while batch := list(islice(rows, 100)):
            pending.add(pool.submit(post, batch))
            if len(pending) >= 2 * int(concurrency):
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                sent += sum(f.result() for f in done)
        sent += sum(f.result() for f in pending)
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    print(sent, seconds, peak)


if __name__ == "__main__":
    main(sys.argv[1:])
