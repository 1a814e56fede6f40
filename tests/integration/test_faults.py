"""DynamoDB throttles for a window, while events are ingested and while the queues are worked:
nothing is lost, nothing is counted twice, everything is eventually delivered.

Throttling is injected where AWS would answer it: a `before-send` hook on the DynamoDB client
answers `ProvisionedThroughputExceededException` (HTTP 400) for a seeded half of the requests in
the window, so botocore's standard retries, the handlers' error paths, SQS redelivery and the
idempotency records all see what they would see on AWS.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse

from devstack import demo
from devstack.lambda_events import LambdaContext, sqs_record
from devstack.provision import Stack
from devstack.sink import Sink
from success_metrics import aws
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from success_metrics.sync import platforms
from tests.support import forwardable, post_events
from tests.support.metrics import assert_matches_recomputation

THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


class Throttle:
    """Answers a seeded share of DynamoDB requests with a throttling error while `on`."""

    def __init__(
        self, share: float, seed: int, tables: set[str] | None = None, budget: int = 10**9
    ) -> None:
        self.share = share
        self.budget = budget
        self.random = random.Random(seed)
        self.tables = tables
        self.on = False
        self.throttled = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.on or self.throttled >= self.budget:
            return None
        if self.tables is not None:
            body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
            if not any(t in body for t in self.tables):
                return None
        if self.random.random() >= self.share:
            return None
        self.throttled += 1
        return AWSResponse(request.url, 400, {"x-amzn-RequestId": "throttled"}, _Raw(THROTTLED))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@pytest.fixture
def throttle(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Throttle]]:
    # No real back-off sleeps in the test: the retries still happen, at once.
    monkeypatch.setattr(
        botocore.retries.standard.RetryPolicy, "compute_retry_delay", lambda *_: 0.0
    )
    installed: list[Throttle] = []

    def install(
        share: float, seed: int, tables: set[str] | None = None, budget: int = 10**9
    ) -> Throttle:
        hook = Throttle(share, seed, tables, budget)
        aws.dynamodb().meta.events.register_first("before-send.dynamodb", hook)
        installed.append(hook)
        return hook

    yield install
    for hook in installed:
        aws.dynamodb().meta.events.unregister("before-send.dynamodb", hook)


def work_queues(stack: Stack, rounds: int, on_round: Callable[[int], None]) -> int:
    """Run the three consumers as Lambda would (partial batch failures go back to the queue)
    until every queue is empty; returns how many messages had to come back."""
    from metrics_aggregate import app as metrics_app
    from platform_sync import app as delivery_app
    from sync_router import app as router_app

    consumers = [
        ("SyncQueue", router_app.lambda_handler, "SyncRouterFunction", 10),
        ("MetricsQueue", metrics_app.lambda_handler, "MetricsAggregateFunction", 10),
        ("DeliveryQueue", delivery_app.lambda_handler, "PlatformSyncFunction", 10),
    ]
    sqs = aws.sqs()
    returned = 0
    for round_ in range(rounds):
        on_round(round_)
        busy = False
        for queue, handler, function, batch in consumers:
            url, arn = stack.physical[queue]["Ref"], stack.physical[queue]["Arn"]
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=60,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                continue
            busy = True
            records = [
                sqs_record(
                    arn,
                    m["MessageId"],
                    m["ReceiptHandle"],
                    m["Body"],
                    attributes=m.get("Attributes"),
                    message_attributes=m.get("MessageAttributes"),
                )
                for m in got
            ]
            try:
                answer = handler({"Records": records}, LambdaContext(function, 120))
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            except Exception:  # the whole invocation failed: the batch comes back
                failed = {m["MessageId"] for m in got}
            for message in got:
                if message["MessageId"] in failed:
                    returned += 1
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not busy:
            return returned
    raise AssertionError(f"the queues were not empty after {rounds} rounds")


def test_a_throttling_window_loses_nothing_and_counts_nothing_twice(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    sink: Sink,
    admin_setup: str,
    throttle: Callable[..., Throttle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BREAKER_FAILURES", "1000")  # the platforms are fine; DynamoDB is not
    organizations.set_limits(org.org_id, requests_per_hour=100_000, events_per_hour=10_000_000)
    events = demo.generate(240, seed=11)
    events_table = stack.physical["EventsTable"]["Ref"]

    # Ingestion while the events table throttles half its requests: producers retry 503s with
    # the same webhook-id and body, as the Standard Webhooks scheme intends.
    # The window: the next 48 requests to the events table are all throttled (more than
    # botocore's 5 attempts for each of the 8 puts a request makes at once, so some requests
    # fail), then the table recovers.
    ingest_window = throttle(1.0, seed=1, tables={events_table}, budget=48)
    ingest_window.on = True
    accepted = 0
    statuses: Counter[int] = Counter()
    for start in range(0, len(events), 40):
        batch = {"events": events[start : start + 40]}
        msg_id = f"msg_fault_{start}"
        for _ in range(30):
            answer = post_events(
                webhook_handler, org.org_id, org.webhook_secret, batch, msg_id=msg_id
            )
            statuses[answer.status] += 1
            if answer.status == 202:
                accepted += answer.json["accepted"]
                break
            assert answer.status == 503, answer
            assert answer.headers["content-type"] == "application/problem+json"
        else:
            raise AssertionError(f"batch {start} never accepted: {statuses}")
    ingest_window.on = False
    assert ingest_window.throttled > 0
    assert statuses[503] > 0, "the window must have made some requests fail"

    # The consumers: every DynamoDB table throttles a third of its requests for 6 rounds, with a
    # full outage of 15 requests at rounds 0 and 3.
    work_window = throttle(1 / 3, seed=2)
    failures_before = statuses.copy()

    def window(round_: int) -> None:
        work_window.on = round_ < 6
        work_window.share = 1.0 if round_ in (0, 3) else 1 / 3
        if round_ in (0, 3):
            work_window.budget = work_window.throttled + 15
        elif round_ in (1, 4):
            work_window.budget = 10**9

    returned = work_queues(stack, 400, window)
    assert work_window.throttled > 15
    assert returned > 0, "the window must have made some messages come back"
    assert failures_before == statuses

    stored = [
        json.loads(i["body"]["S"])["id"]
        for page in aws.dynamodb()
        .get_paginator("scan")
        .paginate(TableName=events_table, ProjectionExpression="body")
        for i in page["Items"]
    ]
    assert len(stored) == len(set(stored)) == accepted == len(events)
    assert_matches_recomputation(org.org_id, events)  # nothing lost, nothing counted twice
    # Every event meant for the customer webhook got there; a redelivery reuses its webhook-id.
    hook_ids: Counter[str] = Counter()
    webhook_ids: dict[str, set[str]] = {}
    for request in sink.requests("/webhooks/"):
        if request["status"] != 200:
            continue
        body = json.loads(request["body"])
        for event in body["events"]:
            hook_ids[event["id"]] += 1
            webhook_ids.setdefault(event["id"], set()).add(request["headers"]["webhook-id"])
    wanted = {e["id"] for e in events if e["type"].startswith(("supplier.", "payment."))}
    assert set(hook_ids) == wanted
    assert all(len(ids) == 1 for ids in webhook_ids.values())
    assert set(sink.mixpanel_insert_ids()) == {platforms.insert_id(i) for i in forwardable(events)}
