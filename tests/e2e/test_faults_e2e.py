"""The SQS pollers stop mid-flight and start again: nothing is lost, nothing counted twice,
everything delivered.

While the pollers are stopped, a consumer that dies holding a batch is simulated too: messages
are received (so they turn invisible) and never deleted; they come back after their visibility
timeout, as they would after a Lambda crash.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from devstack.seed import post_signed
from tests.e2e.conftest import RunningStack
from tests.support.local_stack import aws, counted_metrics, sink_requests, wait_until

BATCHES, PER_BATCH = 6, 25


def batch(tag: str, index: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    return [
        {
            "id": f"evt_{tag}_{index}_{i}",
            "type": "supplier.subscription_started",
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": f"usr_{tag}_{index}_{i}",
            "user_type": "supplier",
            "revenue": {"amount": "29.00", "currency": "GBP"},
            "consent": {"analytics": True},
        }
        for i in range(PER_BATCH)
    ]


def delivered(stack: RunningStack, hook: str) -> Counter[str]:
    return Counter(
        event["id"]
        for request in sink_requests(stack)
        if request["path"] == hook and request["status"] == 200
        for event in json.loads(request["body"])["events"]
    )


def test_pollers_stopped_mid_flight_then_restarted_lose_and_double_nothing(
    stack: RunningStack, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:8]
    created = stack.smctl_json("org", "create", f"Faults {tag}")
    org_id, key, secret = created["org_id"], created["api_key"], created["webhook_secret"]
    hook = f"/webhooks/faults-{tag}"
    stack.smctl(
        "dest", "put", org_id, "hooks", "--settings",
        json.dumps({"kind": "webhook", "url": f"{stack.sink_url}{hook}"}),
    )  # fmt: skip
    control = f"{stack.api_url}/_local/pollers"
    sqs = aws(stack, "sqs")
    sync_queue = sqs.get_queue_url(QueueName="sm-local-SyncQueue")["QueueUrl"]
    accepted = 0
    held = 0
    try:
        for index in range(BATCHES):
            if index == 2:
                assert http.post(f"{control}/pause").json() == {"pollers": "paused"}
                time.sleep(2)  # a batch being handled finishes; nothing new starts
            answer = post_signed(http, stack.api_url, org_id, secret, {"events": batch(tag, index)})
            assert answer.status_code == 202, answer.text
            accepted += answer.json()["accepted"]
            if index == 3:
                # a consumer dies holding messages: received, never deleted
                got = sqs.receive_message(
                    QueueUrl=sync_queue, MaxNumberOfMessages=10, VisibilityTimeout=5
                ).get("Messages", [])
                held += len(got)
        time.sleep(3)
        stopped = delivered(stack, hook)
        assert not any(k.startswith((f"evt_{tag}_3_", f"evt_{tag}_4_")) for k in stopped)
    finally:
        assert http.post(f"{control}/resume").json() == {"pollers": "resumed"}
    assert held > 0

    wanted = {e["id"] for i in range(BATCHES) for e in batch(tag, i)}
    counts = wait_until(
        lambda: (found := delivered(stack, hook)) and set(found) >= wanted and found,
        180,
        "every event at the webhook",
    )
    assert set(counts) == wanted
    assert max(counts.values()) == 1, "an event was delivered twice"
    assert accepted == len(wanted)
    metrics = counted_metrics(stack, http, key, paying=len(wanted))
    assert metrics["totals"]["new_paying_suppliers"] == len(wanted)
    stored = sum(
        page["Count"]
        for page in aws(stack, "dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName="sm-local-EventsTable",
            FilterExpression="org_id = :org",
            ExpressionAttributeValues={":org": {"S": org_id}},
            Select="COUNT",
        )
    )
    assert stored == accepted
