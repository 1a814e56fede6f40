"""Metrics benchmark, on in-process moto, with baselines measured in the same run.

(a) write cost of the aggregate updates: DynamoDB write (and read) capacity units per event,
    counted from the requests the aggregator makes (conditional puts: 1 WCU per KB even when
    they fail; transactions: 2 WCU per KB per item; strongly consistent reads: 1 RCU per 4 KB),
    against the write cost of storing the event itself (base item + two GSI entries);
(b) GET /v1/metrics latency for a one-year range at day granularity, answered from the
    aggregates, against recomputing the same figures from the raw events of that year.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import statistics
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import bench_env  # noqa: F401 - puts the repository on sys.path first

EVENTS = int(os.environ.get("BENCH_METRICS_EVENTS", "2000"))
RUNS = int(os.environ.get("BENCH_METRICS_RUNS", "3"))


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
    """Counts capacity units from the requests a client makes (before they are sent)."""

    def __init__(self) -> None:
        self.wcu = 0.0
        self.rcu = 0.0
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "PutItem":
            self.wcu += math.ceil(item_kb(params["Item"]) or 1)
        elif model.name == "BatchGetItem":
            for request in params["RequestItems"].values():
                self.rcu += len(request["Keys"])  # claims are far below 4 KB
        elif model.name == "TransactWriteItems":
            for action in params["TransactItems"]:
                if "Put" in action:
                    self.wcu += 2 * math.ceil(item_kb(action["Put"]["Item"]) or 1)
                elif "Update" in action:
                    # Charged on the item's size after the update: measured below, 1 KB floor.
                    self.wcu += 2 * max(1, math.ceil(self.counter_item_kb))
        elif model.name == "GetItem":
            self.rcu += 1

    counter_item_kb = 1.0


def main() -> None:
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
        for batch in demo.batches(events, 250):
            body = json.dumps({"events": batch}).encode()
            event = signed_ingest_event(org.org_id, org.webhook_secret, body)
            with contextlib.redirect_stdout(sink):
                assert (
                    app.lambda_handler(event, LambdaContext("WebhookReceiveFunction", 29))[
                        "statusCode"
                    ]
                    == 202
                )

        sqs, ddb = aws.sqs(), aws.dynamodb()
        meter = CapacityMeter()
        ddb.meta.events.register("before-parameter-build.dynamodb.*", meter)
        url = stack.physical["MetricsQueue"]["Ref"]
        started = time.perf_counter()
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                aggregator.handle(message["MessageId"], json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        aggregate_seconds = time.perf_counter() - started
        ddb.meta.events.unregister("before-parameter-build.dynamodb.*", meter)
        counters = [
            i
            for p in ddb.get_paginator("scan").paginate(
                TableName=stack.physical["MetricsTable"]["Ref"]
            )
            for i in p["Items"]
            if i["pk"]["S"].startswith("agg#")
        ]
        meter.counter_item_kb = statistics.mean(item_kb(i) for i in counters)
        # Re-count the transactions with the measured counter item size.
        updates = sum(1 for _ in counters)  # lower bound: one update per item, for reference
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
        assert len(raw) == len(events)
        assert answer["totals"]["signups"]["total"] >= 0

    wcu_per_event = meter.wcu / len(events)
    print(
        f"events: {len(events)} over one year; counter items: {len(counters)} "
        f"(average {meter.counter_item_kb:.2f} KB); transactions: {transactions}; "
        f"aggregation took {aggregate_seconds:.1f} s on moto ({len(events) / aggregate_seconds:.0f} events/s)"
    )
    print(
        f"(a) aggregate write cost: {wcu_per_event:.2f} WCU and {meter.rcu / len(events):.2f} RCU per event "
        f"(calls: {dict(meter.calls)}); storing the event itself: {event_wcu:.1f} WCU "
        f"-> ratio {wcu_per_event / event_wcu:.2f} (updates >= {updates})"
    )
    api, raw_s = statistics.median(api_times), statistics.median(raw_times)
    print(
        f"(b) /v1/metrics, one year at day granularity: {api * 1000:.0f} ms from aggregates / "
        f"{raw_s * 1000:.0f} ms recomputing from raw events = {api / raw_s:.3f}"
    )


if __name__ == "__main__":
    main()
