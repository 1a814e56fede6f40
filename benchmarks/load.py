"""Load: concurrent producers send signed batches to the local stack for a fixed time, over
loopback only, bounded in count and time.

Reported: requests/s, events/s and p50/p95/p99 latency of the stack's ingestion route, and the
same figures for a bare handler in the same run (a loopback HTTP server that reads the body and
answers 202 at once, driven by the same producers): the ratio shows what the stack costs above
the HTTP round trip. Afterwards the pipeline is checked: the stored events equal the sum of the
accepted counts, the metrics count them exactly, and no answer was a 5xx.

Settings: BENCH_LOAD_SECONDS (60), BENCH_LOAD_PRODUCERS (8), BENCH_LOAD_BATCH (20 events),
BENCH_LOAD_MAX_REQUESTS (20000), BENCH_BARE_SECONDS (15).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from bench_env import PATHS, ROOT

from success_metrics import signing

SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
PRODUCERS = int(os.environ.get("BENCH_LOAD_PRODUCERS", "8"))
BATCH = int(os.environ.get("BENCH_LOAD_BATCH", "20"))
MAX_REQUESTS = int(os.environ.get("BENCH_LOAD_MAX_REQUESTS", "20000"))
BARE_SECONDS = float(os.environ.get("BENCH_BARE_SECONDS", "15"))
START_TIMEOUT = 180


def events(tag: str, producer: int, request: int) -> list[dict[str, Any]]:
    moment = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "id": f"evt_{tag}_{producer}_{request}_{i}",
            "type": "supplier.subscription_started",
            "occurred_at": moment,
            "user_id": f"usr_{tag}_{producer}_{request}_{i}",
            "user_type": "supplier",
            "revenue": {"amount": "29.00", "currency": "GBP"},
            "consent": {"analytics": False},
        }
        for i in range(BATCH)
    ]


def drive(url: str, secret: str, seconds: float, tag: str) -> dict[str, Any]:
    """PRODUCERS threads, each sending signed batches back to back until the time is up."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted = [0]
    sent = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def producer(index: int) -> None:
        with httpx.Client(timeout=60) as client:
            request = 0
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= MAX_REQUESTS:
                        return
                    sent[0] += 1
                body = json.dumps({"events": events(tag, index, request)}).encode()
                headers = signing.sign_headers(
                    secret, f"msg_{tag}_{index}_{request}", int(time.time()), body
                )
                headers["content-type"] = "application/json"
                started = time.perf_counter()
                answer = client.post(url, content=body, headers=headers)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[answer.status_code] += 1
                    if answer.status_code == 202:
                        accepted[0] += int(answer.json().get("accepted", 0))
                request += 1

    started = time.monotonic()
    threads = [threading.Thread(target=producer, args=(i,)) for i in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "events_per_s": accepted[0] / wall,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) * 1000,
        "statuses": dict(statuses),
        "accepted": accepted[0],
    }


class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer: headers and body sent apart meet the peer's delayed ACK (40 ms).
    wbufsize = 64 * 1024

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        answer = json.dumps({"accepted": BATCH if body else 0}).encode()
        self.send_response(202)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def bare_baseline() -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/organizations/bare/events"
        return drive(url, signing.generate_secret(), BARE_SECONDS, "bare")
    finally:
        server.shutdown()


def start_stack(state: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(PATHS),
        "SM_AWS_PORT": "0",
        "SM_API_PORT": "0",
        "SM_SINK_PORT": "0",
    }
    log = (state / "stack.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "devstack", "--state-dir", str(state / "s"), "--no-demo"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def smctl(state: Path, *args: str) -> Any:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("smctl")), *args, "--json", "--stack-file",
         str(state / "s" / "stack.json")],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout) if out.stdout.strip() else None


def stored_count(stack: dict[str, Any], org_id: str) -> int:
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=stack["aws_endpoint"],
        region_name=stack["region"],
        **stack["credentials"],  # the stack's operator: the emulator enforces IAM
    )
    pages = client.get_paginator("scan").paginate(
        TableName=stack["environment"]["EVENTS_TABLE"],
        FilterExpression="org_id = :org",
        ExpressionAttributeValues={":org": {"S": org_id}},
        Select="COUNT",
    )
    return sum(page["Count"] for page in pages)


def counted(api_url: str, key: str) -> int:
    today = date.today()
    answer = httpx.get(
        f"{api_url}/v1/metrics",
        params={"from": str(today - timedelta(days=1)), "to": str(today), "granularity": "day"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    answer.raise_for_status()
    return int(answer.json()["totals"]["new_paying_suppliers"])


def main() -> None:
    bare = bare_baseline()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        process = start_stack(state)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while "[devstack] ready" not in (state / "stack.log").read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((state / "stack.log").read_text()[-3000:])
                time.sleep(0.3)
            stack = json.loads((state / "s" / "stack.json").read_text())
            org = smctl(state, "org", "create", "Load test")
            smctl(
                state, "org", "set-limits", org["org_id"],
                "--requests-per-hour", "10000000", "--events-per-hour", "1000000000",
            )  # fmt: skip
            url = f"{stack['api_url']}/v1/organizations/{org['org_id']}/events"
            load = drive(url, org["webhook_secret"], SECONDS, uuid.uuid4().hex[:6])
            drained_by = time.monotonic() + 300
            while time.monotonic() < drained_by:
                stored = stored_count(stack, org["org_id"])
                metric = counted(stack["api_url"], org["api_key"])
                if stored == load["accepted"] and metric == load["accepted"]:
                    break
                time.sleep(2)
        finally:
            process.terminate()
            process.wait(timeout=30)

    print(f"load: {PRODUCERS} producers x {BATCH}-event signed batches, {SECONDS:.0f} s, loopback")
    for name, figures in (("local stack", load), ("bare handler", bare)):
        print(
            f"  {name:<13} {figures['rps']:>8.1f} req/s {figures['events_per_s']:>9.1f} events/s"
            f"  p50 {figures['p50']:>7.1f} ms  p95 {figures['p95']:>7.1f} ms"
            f"  p99 {figures['p99']:>7.1f} ms  ({figures['requests']} requests)"
        )
    print(
        f"  ratio stack / bare: throughput {load['rps'] / bare['rps']:.3f}, "
        f"p50 latency {load['p50'] / bare['p50']:.1f}x"
    )
    fivexx = sum(n for status, n in load["statuses"].items() if status >= 500)
    print(f"  answers {load['statuses']}; 5xx: {fivexx}")
    print(
        f"  accepted {load['accepted']}, stored {stored}, counted by the metrics {metric}: "
        + ("consistent" if stored == load["accepted"] == metric else "INCONSISTENT")
    )
    if fivexx or not stored == load["accepted"] == metric:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
