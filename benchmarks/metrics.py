"""Metrics benchmark, on in-process moto, with baselines measured in the same run.

(a) write cost of the aggregate updates: DynamoDB write (and read) capacity units per event,
    counted from the requests the aggregator makes (conditional puts: 1 WCU per KB even when
    they fail; transactions: 2 WCU per KB per item; strongly consistent reads: 1 RCU per 4 KB),
    against the write cost of storing the event itself (base item + two GSI entries);
(b) GET /v1/metrics latency for a one-year range at day granularity, answered from the
    aggregates, against recomputing the same figures from the raw events of that year.

"Before": the same benchmark of the commit named by BENCH_METRICS_BASELINE (default: the last
one before the subscription ledgers and the funnel, issue 17), run first in a temporary git
worktree with the same interpreter, so both figures come from this machine in this run. Each
run generates its own demo events (the later generator adds plan changes and yearly plans).
The units are split by what they pay for: counter deltas (transactions), fact claims
(conditional puts and batched reads) and the per-supplier and per-couple ledgers.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import bench_env  # puts the repository on sys.path first

EVENTS = int(os.environ.get("BENCH_METRICS_EVENTS", "2000"))
RUNS = int(os.environ.get("BENCH_METRICS_RUNS", "3"))
BASELINE = os.environ.get("BENCH_METRICS_BASELINE", "d85f5e2")


def item_kb(item: dict[str, Any]) -> float:
    """DynamoDB item size: attribute names plus values (numbers ~ digits/2 + 1 bytes)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "N":
            size += len(str(raw).lstrip("-").replace(".", "")) // 2 + 1
        elif kind == "S":
            size += len(str(raw).encode())
        else:
            size += len(json.dumps(raw).encode())
    return size / 1024


class CapacityMeter:
    """Counts capacity units from the requests a client makes (before they are sent), in total
    and by what they pay for."""

    def __init__(self) -> None:
        self.wcu = 0.0
        self.rcu = 0.0
        self.calls: Counter[str] = Counter()
        self.wcu_for: Counter[str] = Counter()
        self.rcu_for: Counter[str] = Counter()

    def _write(self, purpose: str, units: float) -> None:
        self.wcu += units
        self.wcu_for[purpose] += units

    def _read(self, purpose: str, units: float) -> None:
        self.rcu += units
        self.rcu_for[purpose] += units

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "PutItem":
            purpose = "ledgers" if "|ledger|" in params["Item"]["pk"]["S"] else "claims"
            self._write(purpose, math.ceil(item_kb(params["Item"]) or 1))
        elif model.name == "BatchGetItem":
            for request in params["RequestItems"].values():
                for key in request["Keys"]:  # claims and packed facts are far below 4 KB
                    self._read("ledgers" if "|ledger|" in key["pk"]["S"] else "claims", 1)
        elif model.name == "TransactWriteItems":
            for action in params["TransactItems"]:
                if "Put" in action:
                    self._write("counters", 2 * math.ceil(item_kb(action["Put"]["Item"]) or 1))
                elif "Update" in action:
                    self.updates += 1  # charged by settle(), on the items' measured size
        elif model.name == "Query":  # a message's applied markers: a few, far below 4 KB
            self._read("counters", 1)
        elif model.name == "GetItem":
            purpose = "ledgers" if "|ledger|" in params["Key"]["pk"]["S"] else "claims"
            self._read(purpose, 1)  # a ledger is a few KB at most: 1 RCU per 4 KB

    def after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        """An UpdateItem (a request's event claims, written into one item) costs the item's
        size after it (1 WCU per KB): its answer holds the whole item (ReturnValues ALL_NEW)."""
        if model.name == "UpdateItem":
            self._write("claims", math.ceil(item_kb(parsed.get("Attributes") or {}) or 1))

    updates = 0

    def settle(self, counter_item_kb: float) -> None:
        """Charge the transactional updates on the counter items' size after the update
        (2 WCU per KB, 1 KB floor), measured once aggregation is over."""
        self._write("counters", 2 * max(1, math.ceil(counter_item_kb)) * self.updates)
        self.updates = 0

    def split(self, events: int) -> str:
        parts = sorted({*self.wcu_for, *self.rcu_for})
        return ", ".join(
            f"{p} {self.wcu_for[p] / events:.2f} WCU / {self.rcu_for[p] / events:.2f} RCU"
            for p in parts
        )


COST_LINE = re.compile(r"\(a\) aggregate write cost: ([\d.]+) WCU and ([\d.]+) RCU per event")
QUERY_LINE = re.compile(r"\(b\) /v1/metrics.*= ([\d.]+)")


def baseline(rev: str) -> tuple[float, float, float | None] | None:
    """The aggregate cost per event of commit `rev`, from its own benchmark in a worktree."""
    root = bench_env.ROOT
    with tempfile.TemporaryDirectory(prefix="sm-bench-") as scratch:
        tree = os.path.join(scratch, "tree")
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", "--quiet", tree, rev],
            check=True,
        )
        try:
            done = subprocess.run(
                [sys.executable, os.path.join(tree, "benchmarks", "metrics.py")],
                capture_output=True,
                text=True,
                env={**os.environ, "BENCH_METRICS_BASELINE": ""},
                check=False,
            )
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", tree], check=False
            )
    found = COST_LINE.search(done.stdout)
    if done.returncode or not found:
        print(f"baseline {rev} did not run: {done.stderr[-500:]}", file=sys.stderr)
        return None
    query_ratio = QUERY_LINE.search(done.stdout)
    return float(found[1]), float(found[2]), float(query_ratio[1]) if query_ratio else None


def main() -> None:
    before = baseline(BASELINE) if BASELINE else None
    from moto import mock_aws

    from devstack import demo
    from devstack.lambda_events import LambdaContext, signed_ingest_event
    from devstack.provision import provision
    from success_metrics import aws, caches
    from success_metrics.metrics import aggregator, query
    from success_metrics.models.events import Event
    from success_metrics.stores import events as event_store
    from success_metrics.stores import organizations
    from tests.reference_metrics import recompute

    with mock_aws():
        caches.reset_all()
        stack = provision(prefix="bench")
        os.environ.update(stack.all_environment())
        caches.reset_all()
        org = organizations.create_organization("Bench Metrics")
        organizations.set_limits(org.org_id, requests_per_hour=10**6, events_per_hour=10**9)
        from webhook_receive import app

        events = demo.generate(
            EVENTS, seed=13, season_start=date(2025, 11, 1), season_end=date(2026, 10, 31)
        )
        sink = io.StringIO()
        sqs, ddb = aws.sqs(), aws.dynamodb()
        url = stack.physical["MetricsQueue"]["Ref"]

        def ingest(sent: list[dict[str, Any]]) -> None:
            for batch in demo.batches(sent, 250):
                body = json.dumps({"events": batch}).encode()
                event = signed_ingest_event(org.org_id, org.webhook_secret, body)
                with contextlib.redirect_stdout(sink):
                    answer = app.lambda_handler(event, LambdaContext("WebhookReceiveFunction", 29))
                assert answer["statusCode"] == 202, answer

        def aggregate(meter: CapacityMeter) -> float:
            ddb.meta.events.register("before-parameter-build.dynamodb.*", meter)
            ddb.meta.events.register("after-call.dynamodb.UpdateItem", meter.after)
            started = time.perf_counter()
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                for message in messages:
                    aggregator.handle(message["MessageId"], json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            ddb.meta.events.unregister("before-parameter-build.dynamodb.*", meter)
            ddb.meta.events.unregister("after-call.dynamodb.UpdateItem", meter.after)
            return time.perf_counter() - started

        ingest(events)
        season = len(events)
        meter = CapacityMeter()
        aggregate_seconds = aggregate(meter)
        # The subscription book on top, costed apart.
        book_list = demo.subscription_book(
            40, seed=13, season_start=date(2025, 11, 1), season_end=date(2026, 10, 31)
        )
        book_events = len(book_list)
        ingest(book_list)
        book_meter = CapacityMeter()
        aggregate(book_meter)
        events = events + book_list
        counters = [
            i
            for p in ddb.get_paginator("scan").paginate(
                TableName=stack.physical["MetricsTable"]["Ref"]
            )
            for i in p["Items"]
            if i["pk"]["S"].startswith("agg#")
        ]
        counter_item_kb = statistics.mean(item_kb(i) for i in counters)
        meter.settle(counter_item_kb)
        book_meter.settle(counter_item_kb)
        updates = len(counters)  # lower bound: one update per item, for reference
        event_wcu = statistics.mean(
            math.ceil(
                item_kb(
                    event_store.item(
                        Event.model_validate(e),
                        org.org_id,
                        "w",
                        event_store.document(Event.model_validate(e), org.org_id, 0),
                        730,
                    )
                )
            )
            * 3  # base item + ByDay (ALL) + ByUser (keys)
            for e in events[:200]
        )
        transactions = meter.calls["TransactWriteItems"]

        q = query.MetricsQuery.model_validate(
            {"from": "2025-11-01", "to": "2026-10-31", "granularity": "day"}
        )
        api_times, raw_times = [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            answer = query.metrics(org.org_id, q, Decimal(1))
            api_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw = []
            paginator = ddb.get_paginator("query")
            for day in query.days(date(2025, 11, 1), date(2026, 10, 31)):
                for shard in range(event_store.SHARDS):
                    for page in paginator.paginate(
                        TableName=stack.physical["EventsTable"]["Ref"],
                        IndexName="ByDay",
                        KeyConditionExpression="day_pk = :pk",
                        ExpressionAttributeValues={
                            ":pk": {"S": f"{org.org_id}#{day.isoformat()}#{shard:02d}"}
                        },
                    ):
                        raw.extend(json.loads(i["body"]["S"]) for i in page["Items"])
            recompute(raw)
            raw_times.append(time.perf_counter() - start)
        in_year = [e for e in events if "2025-11-01" <= e["occurred_at"][:10] <= "2026-10-31"]
        assert len(raw) == len(in_year), (len(raw), len(in_year))
        assert answer["totals"]["signups"]["total"] >= 0

    wcu_per_event = meter.wcu / season
    print(
        f"events: {season} over one year (+ {book_events} of the subscription book); counter "
        f"items: {len(counters)} (average {counter_item_kb:.2f} KB); transactions: "
        f"{transactions}; aggregation took {aggregate_seconds:.1f} s on moto "
        f"({season / aggregate_seconds:.0f} events/s)"
    )
    print(
        f"(a) aggregate write cost: {wcu_per_event:.2f} WCU and {meter.rcu / season:.2f} RCU per event "
        f"(calls: {dict(meter.calls)}); storing the event itself: {event_wcu:.1f} WCU "
        f"-> ratio {wcu_per_event / event_wcu:.2f} (updates >= {updates})"
    )
    print(f"    by purpose, per event: {meter.split(season)}")
    print(
        f"    the subscription book ({book_events} events: renewals, plan changes, "
        f"cancellations, reactivations, yearly plans): {book_meter.wcu / book_events:.2f} WCU "
        f"and {book_meter.rcu / book_events:.2f} RCU per event ({book_meter.split(book_events)})"
    )
    if before is not None:
        print(
            f"    before ({BASELINE}, same run): {before[0]:.2f} WCU and {before[1]:.2f} RCU per "
            f"event -> after / before: {wcu_per_event / before[0]:.2f} WCU, "
            f"{meter.rcu / season / before[1]:.2f} RCU"
        )
    api, raw_s = statistics.median(api_times), statistics.median(raw_times)
    print(
        f"(b) /v1/metrics, one year at day granularity: {api * 1000:.0f} ms from aggregates / "
        f"{raw_s * 1000:.0f} ms recomputing from raw events = {api / raw_s:.3f}"
        + (f" (before, same run: {before[2]:.3f})" if before and before[2] is not None else "")
    )


if __name__ == "__main__":
    main()
