"""Load: concurrent producers send signed batches to the local stack for a fixed time, over
loopback only, bounded in count and time.

Reported: requests/s, events/s and p50/p95/p99 latency of the stack's ingestion route, and the
same figures for a bare handler in the same run (a loopback HTTP server that reads the body and
answers 202 at once, driven by the same producers): the ratio shows what the stack costs above
the HTTP round trip. Afterwards the pipeline is checked: the stored events equal the sum of the
accepted counts, the metrics count them exactly, and no answer was a 5xx.

The stack also logs every AWS call its event path makes (`SM_CALL_LOG`: ingestion, the
router, the platform sync, the metrics and the event sources polling for them). Once the
pipeline has caught up, those calls are replayed bare against a fresh emulator (`python -m
devstack --emulator-only`: the same moto, the same provisioned template, IAM on), from
BENCH_REPLAY_PROCESSES processes of BENCH_REPLAY_THREADS threads, each invocation's calls in
their order: the events/s of that replay is the emulator's own capacity for the calls the
events need, and the stack's sustained events/s (accepted events over the time from the first
request until the metrics counted the last one) is reported against it.

Settings: BENCH_LOAD_SECONDS (60), BENCH_LOAD_PRODUCERS (8), BENCH_LOAD_BATCH (20 events),
BENCH_LOAD_MAX_REQUESTS (20000), BENCH_BARE_SECONDS (15), BENCH_REPLAY_PROCESSES (2),
BENCH_REPLAY_THREADS (8).
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
REPLAY_PROCESSES = int(os.environ.get("BENCH_REPLAY_PROCESSES", "2"))
REPLAY_THREADS = int(os.environ.get("BENCH_REPLAY_THREADS", "8"))
START_TIMEOUT = 180
# The functions an accepted event goes through (the rest serve the benchmark's own queries).
EVENT_PATH = (
    "WebhookReceiveFunction",
    "SyncRouterFunction",
    "PlatformSyncFunction",
    "MetricsAggregateFunction",
)


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


def start_stack(state: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(PATHS),
        "SM_AWS_PORT": "0",
        "SM_API_PORT": "0",
        "SM_SINK_PORT": "0",
        **env,
    }
    log = (state / "stack.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--state-dir", str(state / "s"), "--no-demo", *args],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while "[devstack] ready" not in (state / "stack.log").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit((state / "stack.log").read_text()[-3000:])
        time.sleep(0.3)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


# ------------------------------------------------------------------ the bare replay


def segments(path: Path) -> tuple[list[list[Any]], Counter[str]]:
    """The event path's calls cut into independent runs: one invocation's calls (with the
    receive before it and the delete after it, for an event source), in their order."""
    from devstack import calls

    lanes: dict[str, list[Any]] = {}
    left_out: Counter[str] = Counter()
    for call in calls.read(path):
        if call.function in EVENT_PATH:
            lanes.setdefault(call.lane, []).append(call)
        else:
            left_out[call.function] += 1
    found: list[list[Any]] = []
    for lane in lanes.values():
        current: list[Any] = []
        invocation: str | None = None
        for call in lane:
            receive = call.operation == "ReceiveMessage"
            starts = (receive and current and current[-1].operation != "ReceiveMessage") or (
                call.invocation is not None
                and invocation is not None
                and call.invocation != invocation
            )
            if starts:
                found.append(current)
                current, invocation = [], None
            current.append(call)
            invocation = invocation or call.invocation
        if current:
            found.append(current)
    return found, left_out


def _rewrite(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    return value


_HANDLED = ("DeleteMessageBatch", "DeleteMessage", "ChangeMessageVisibilityBatch")


def replay_part(
    part: list[list[Any]], stack: dict[str, Any], old_endpoint: str, threads: int
) -> dict[str, Any]:
    """Replay these segments from `threads` threads; what happened to each call."""
    import queue

    import boto3
    from botocore import xform_name
    from botocore.config import Config
    from botocore.exceptions import ClientError

    session = boto3.session.Session(region_name=stack["region"], **stack["credentials"])
    config = Config(max_pool_connections=threads * 2, retries={"mode": "standard"})
    clients: dict[str, Any] = {}
    todo: queue.Queue[list[Any]] = queue.Queue()
    for segment in part:
        todo.put(segment)
    outcome: Counter[str] = Counter()
    lock = threading.Lock()

    def client(service: str) -> Any:
        with lock:
            if service not in clients:
                clients[service] = session.client(
                    service, endpoint_url=stack["aws_endpoint"], config=config
                )
            return clients[service]

    def run_segment(segment: list[Any]) -> None:
        handles: list[str] = []  # what this segment received, for its own deletes
        for call in segment:
            params = _rewrite(call.params, old_endpoint, stack["aws_endpoint"])
            if call.operation == "ReceiveMessage":
                params["WaitTimeSeconds"] = 0
            elif call.operation in _HANDLED:
                if call.operation == "DeleteMessage":
                    if not handles:
                        with lock:
                            outcome["skipped: nothing received to delete"] += 1
                        continue
                    params["ReceiptHandle"] = handles.pop()
                else:
                    entries = []
                    for entry in params["Entries"]:
                        if handles:
                            entries.append({**entry, "ReceiptHandle": handles.pop()})
                    if not entries:
                        with lock:
                            outcome["skipped: nothing received to delete"] += 1
                        continue
                    params["Entries"] = entries
            try:
                answer = getattr(client(call.service), xform_name(call.operation))(**params)
                result = "ok"
                if call.operation == "ReceiveMessage":
                    handles += [m["ReceiptHandle"] for m in answer.get("Messages", [])]
            except ClientError as exc:
                result = f"error {exc.response['Error']['Code']}"
            with lock:
                outcome[result] += 1

    def worker() -> None:
        while True:
            try:
                segment = todo.get_nowait()
            except queue.Empty:
                return
            run_segment(segment)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"wall": time.monotonic() - started, "outcome": dict(outcome)}


def bare_emulator(log: Path, old_endpoint: str, state: Path) -> dict[str, Any]:
    """Replay the logged calls against a freshly provisioned emulator; how long it took."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    found, left_out = segments(log)
    calls_n = sum(len(s) for s in found)
    process = start_stack(state, "--emulator-only")
    try:
        stack = json.loads((state / "s" / "stack.json").read_text())
        parts = [found[i::REPLAY_PROCESSES] for i in range(REPLAY_PROCESSES)]
        started = time.monotonic()
        with ProcessPoolExecutor(REPLAY_PROCESSES, mp_context=get_context("spawn")) as pool:
            results = list(
                pool.map(
                    replay_part,
                    parts,
                    [stack] * len(parts),
                    [old_endpoint] * len(parts),
                    [REPLAY_THREADS] * len(parts),
                )
            )
        wall = time.monotonic() - started
    finally:
        stop(process)
    outcome: Counter[str] = Counter()
    for result in results:
        outcome.update(result["outcome"])
    by_operation = Counter(f"{c.service}:{c.operation}" for s in found for c in s)
    return {
        "wall": max(r["wall"] for r in results),
        "elapsed": wall,
        "calls": calls_n,
        "segments": len(found),
        "outcome": dict(outcome),
        "left_out": dict(left_out),
        "by_operation": by_operation,
    }


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
        (state / "replay").mkdir()
        log = state / "calls.jsonl"
        process = start_stack(state, SM_CALL_LOG=str(log))
        try:
            stack = json.loads((state / "s" / "stack.json").read_text())
            org = smctl(state, "org", "create", "Load test")
            smctl(
                state, "org", "set-limits", org["org_id"],
                "--requests-per-hour", "10000000", "--events-per-hour", "1000000000",
            )  # fmt: skip
            url = f"{stack['api_url']}/v1/organizations/{org['org_id']}/events"
            began = time.monotonic()
            load = drive(url, org["webhook_secret"], SECONDS, uuid.uuid4().hex[:6])
            ended = time.monotonic()
            drained_by = ended + 300
            while time.monotonic() < drained_by:
                stored = stored_count(stack, org["org_id"])
                metric = counted(stack["api_url"], org["api_key"])
                if stored == load["accepted"] and metric == load["accepted"]:
                    break
                time.sleep(0.5)
            caught_up = time.monotonic()
        finally:
            stop(process)
        replay = bare_emulator(log, stack["aws_endpoint"], state / "replay")
    sustained = load["accepted"] / (caught_up - began)
    emulator = load["accepted"] / replay["wall"]

    print(f"load: {PRODUCERS} producers x {BATCH}-event signed batches, {SECONDS:.0f} s, loopback")
    for name, figures in (("local stack", load), ("bare handler", bare)):
        print(
            f"  {name:<13} {figures['rps']:>8.1f} req/s {figures['events_per_s']:>9.1f} events/s"
            f"  p50 {figures['p50']:>7.1f} ms  p95 {figures['p95']:>7.1f} ms"
            f"  p99 {figures['p99']:>7.1f} ms  ({figures['requests']} requests)"
        )
    print(
        f"  ratio stack / bare handler: throughput {load['rps'] / bare['rps']:.3f}, "
        f"p50 latency {load['p50'] / bare['p50']:.1f}x"
    )
    print(
        f"  pipeline: the metrics counted the last accepted event {caught_up - ended:.1f} s "
        f"after the load; sustained {sustained:.1f} events/s (accepted / first request to "
        "last counted)"
    )
    print(
        f"  bare emulator: the event path's {replay['calls']} AWS calls "
        f"({replay['calls'] / max(load['accepted'], 1):.2f} per event, {replay['segments']} "
        f"invocations) replayed in {replay['wall']:.1f} s from {REPLAY_PROCESSES} x "
        f"{REPLAY_THREADS} threads = {emulator:.1f} events/s"
    )
    print(
        f"    outcomes {replay['outcome']}; not replayed (benchmark's queries) {replay['left_out']}"
    )
    top = ", ".join(f"{op} {n}" for op, n in replay["by_operation"].most_common(8))
    print(f"    calls: {top}")
    print(f"  ratio stack sustained / bare emulator: {sustained / emulator:.3f} (target >= 0.7)")
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
