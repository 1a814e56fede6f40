"""Fault tests: a destination failing 30 % of requests at random over 5,000 events."""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from devstack.lambda_events import LambdaContext, sqs_record
from devstack.provision import Stack
from devstack.sink import Fault, Sink
from smctl import app as cli
from smctl.commands.dlq import dead_letter_url
from success_metrics import aws, caches, dead_letters
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.sync import delivery_log, platforms, recovery, worker
from tests.support import forwardable, post_events
from tests.support.sync import configure

EVENTS = 5000


def season_of_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    kinds = [
        "supplier.subscription_started",
        "payment.succeeded",
        "feature.used",
        "session.started",
    ]
    events = []
    for i in range(n):
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "id": f"evt-{seed}-{i:05d}-{uuid.uuid4().hex[:6]}",
            "type": kind,
            "occurred_at": (start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": f"usr_{rng.randrange(60)}",
            "user_type": "supplier",
            "properties": {"feature": "checklist"} if kind == "feature.used" else {"plan": "pro"},
            "context": {"country": rng.choice(["GB", "US", "FR", "DE"]), "device": "mobile"},
            "consent": {"analytics": rng.random() > 0.1},
        }
        if kind in ("payment.succeeded", "supplier.subscription_started"):
            event["revenue"] = {"amount": "10.00", "currency": "GBP"}
            event["properties"]["wedding_id"] = f"wed_{i % 40}"
        events.append(event)
    return events


def pump(stack: Stack, *, rounds: int = 60) -> None:
    """Run router and worker as Lambda would (their handlers, batches of 10, partial batch
    failures back to the queue at once) until the queues are empty (bounded)."""
    from platform_sync import app as delivery_app
    from sync_router import app as router_app

    sqs = aws.sqs()
    consumers = (
        ("SyncQueue", router_app.lambda_handler, "SyncRouterFunction"),
        ("DeliveryQueue", delivery_app.lambda_handler, "PlatformSyncFunction"),
    )
    for _ in range(rounds):
        busy = False
        for queue, handler, function in consumers:
            url, arn = stack.physical[queue]["Ref"], stack.physical[queue]["Arn"]
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                continue
            busy = True
            records = [
                sqs_record(
                    arn, m["MessageId"], m["ReceiptHandle"], m["Body"],
                    attributes=m.get("Attributes"), message_attributes=m.get("MessageAttributes"),
                )
                for m in got
            ]  # fmt: skip
            answer = handler({"Records": records}, LambdaContext(function, 120))
            retry = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            for m in got:
                if m["MessageId"] in retry:  # partial batch failure: back to the queue now
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if not busy:
            return
    raise AssertionError("deliveries did not settle")


def breaker_state(org_id: str, dest_id: str) -> str | None:
    """The shared circuit state, read from the control table where every instance reads it."""
    from success_metrics.settings import get_settings

    item = (
        aws.dynamodb()
        .get_item(TableName=get_settings().control_table, Key={"pk": {"S": f"{org_id}:{dest_id}"}})
        .get("Item")
    )
    return str(item["state"]["S"]).upper() if item else None


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Correctness, not timing: backoff waits shrink to a few milliseconds.
    monkeypatch.setattr(worker, "_wait", lambda state: 0.005)
    monkeypatch.setenv("BREAKER_RECOVERY_SECONDS", "1")
    caches.reset_all()


@pytest.mark.parametrize(("failing", "seed"), [("/import", 3), ("/mp/collect", 5)])
def test_thirty_percent_faults_lose_nothing_and_duplicate_nothing(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    fast_retries: None,
    failing: str,
    seed: int,
) -> None:
    from success_metrics.stores import organizations

    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    signing_secret = configure(admin_handler, authorizer_handler, org, sink)
    events = season_of_events(EVENTS, seed)
    consented = [e for e in events if e["consent"]["analytics"]]
    sink.set_fault(
        Fault(
            rate=0.3, path_prefix=failing, choices=(500, 429, "timeout"), retry_after=0, seed=seed
        )
    )
    for start in range(0, EVENTS, 500):
        assert (
            post_events(
                webhook_handler,
                org.org_id,
                org.webhook_secret,
                {"events": events[start : start + 500]},
            ).status
            == 202
        )

    pump(stack)

    faulted = [r for r in sink.requests(failing) if r["fault"]]
    assert faulted  # the faults really happened
    # Every consented event reached Mixpanel, each $insert_id imported exactly once
    imported = sink.mixpanel_insert_ids()
    assert set(imported) == {platforms.insert_id(e["id"]) for e in consented}
    assert set(imported.values()) == {1}
    # No GA4 request that succeeded was sent again, and every consented event got there once
    ga4_ok = [json.loads(r["body"]) for r in sink.requests("/mp/collect") if r["status"] == 204]
    sent = Counter(p["event_id"] for body in ga4_ok for p in (e["params"] for e in body["events"]))
    assert set(sent) == {e["id"] for e in consented}
    assert set(sent.values()) == {1}
    # The webhook destination was never slowed or duplicated by the failing platform
    hooks = sink.requests("/webhooks/acme")
    assert all(r["status"] == 200 for r in hooks)
    for hook in hooks:  # the reference library verifies every outbound webhook
        Webhook(signing_secret).verify(hook["body"], hook["headers"])
    assert len({r["headers"]["webhook-id"] for r in hooks}) == len(hooks)


def test_full_outage_opens_the_breaker_dead_letters_and_a_replay_delivers_the_rest(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    fast_retries: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from success_metrics.stores import organizations

    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    configure(admin_handler, authorizer_handler, org, sink)
    organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/ops")
    events = season_of_events(300, 9)
    sink.set_fault(Fault(status=503, rate=1.0, path_prefix="/webhooks/", retry_after=0))
    for start in range(0, 300, 100):
        post_events(
            webhook_handler, org.org_id, org.webhook_secret, {"events": events[start : start + 100]}
        )

    # During the outage every webhook delivery ends in the dead-letter queue (8 receives)
    for _ in range(12):
        with contextlib.suppress(AssertionError):  # still unsettled: that is the outage
            pump(stack, rounds=30)
        time.sleep(1.1)  # let the breaker probe again
    dlq = dead_letter_url(stack.physical["DeliveryQueue"]["Ref"])
    capsys.readouterr()
    assert cli.main(["dlq", "list", "--no-local", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["approximate"] == 3
    # the tenant sees its three, each with the delivery it carried, left dead-lettered
    mine = dead_letters.listing(org.org_id)
    assert mine["counts"]["delivery"] == 3
    letters = mine["dead_letters"]
    assert {d["message_id"] for d in letters} == {m["message_id"] for m in listed["sample"]}
    assert all(d["reason"] for d in letters), letters
    for letter in letters:
        delivery = delivery_log.summary(org.org_id, letter["carried"]["delivery_id"])
        assert delivery is not None
        assert delivery["status"] == "dead_lettered", (letter, delivery)
    assert any(
        "circuit breaker is open" in json.loads(r["body"])["text"]
        for r in sink.requests("/services/")
    )
    assert not [r for r in sink.requests("/webhooks/") if r["status"] == 200]

    # After recovery, a replay delivers every event, once
    sink.set_fault(None)
    capsys.readouterr()
    assert cli.main(["dlq", "replay", "--no-local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == 3
    pump(stack)
    delivered = [
        e["id"]
        for r in sink.requests("/webhooks/")
        if r["status"] == 200
        for e in json.loads(r["body"])["events"]
    ]
    # its filter, and its consent gate (analytics, the default)
    consented = forwardable(events)
    wanted = [
        e["id"]
        for e in events
        if e["type"].startswith(("supplier.", "payment.")) and e["id"] in consented
    ]
    assert sorted(delivered) == sorted(wanted)
    assert aws.sqs().receive_message(QueueUrl=dlq).get("Messages") is None
    assert breaker_state(org.org_id, "hooks") == "CLOSED"  # closed again after the recovery


@pytest.mark.parametrize("how", ["tenant replays its dead letters", "recovery job"])
def test_after_an_outage_the_tenant_recovers_every_event_once_without_the_operator(
    stack: Stack,
    org: CreatedOrganization,
    webhook_handler: Any,
    admin_handler: Any,
    authorizer_handler: Any,
    sink: Sink,
    fast_retries: None,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    from success_metrics.stores import organizations

    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=1_000_000)
    configure(admin_handler, authorizer_handler, org, sink)
    events = season_of_events(200, 4)
    sink.set_fault(Fault(status=503, rate=1.0, path_prefix="/webhooks/", retry_after=0))
    started = int(time.time())
    for start in range(0, 200, 100):
        post_events(
            webhook_handler, org.org_id, org.webhook_secret, {"events": events[start : start + 100]}
        )
    for _ in range(12):
        with contextlib.suppress(AssertionError):
            pump(stack, rounds=30)
        time.sleep(1.1)
    assert dead_letters.listing(org.org_id)["counts"]["delivery"] == 2
    sink.set_fault(None)

    if how == "recovery job":
        job = recovery.start(org.org_id, org.key_id, started, "hooks")
        with pytest.raises(Exception, match="still running"):  # one at a time
            recovery.start(org.org_id, org.key_id, started, None)
        pump(stack)
        done = recovery.get(org.org_id, job["recovery_id"])
        assert done["status"] == "done", done
        assert (done["found"], done["queued"], done["skipped"]) == (2, 2, {})
    else:
        assert dead_letters.replay_all(org.org_id, "delivery") == 2
        pump(stack)
    # and then the operator replays the shared queue's copies too: nothing is sent twice
    capsys.readouterr()
    assert cli.main(["dlq", "replay", "--no-local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["replayed"] == 2
    pump(stack)

    delivered = Counter(
        e["id"]
        for r in sink.requests("/webhooks/")
        if r["status"] == 200
        for e in json.loads(r["body"])["events"]
    )
    consented = forwardable(events)
    wanted = {
        e["id"]
        for e in events
        if e["type"].startswith(("supplier.", "payment.")) and e["id"] in consented
    }
    assert set(delivered) == wanted
    assert set(delivered.values()) == {1}
    statuses = {d["status"] for d in delivery_log.list_deliveries(org.org_id, None, 1000)}
    assert "dead_lettered" not in statuses
