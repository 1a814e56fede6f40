"""Exactly-once aggregation and the metrics API, in-process on moto."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack import demo, iam
from devstack.lambda_events import http_event
from devstack.provision import Stack
from success_metrics import aws
from success_metrics.metrics import aggregator
from success_metrics.metrics.contributions import Token
from success_metrics.models.organizations import CreatedOrganization, Scope
from success_metrics.stores import metrics as metrics_store
from success_metrics.stores import organizations
from success_metrics.stores.claims import Claims
from tests.integration.conftest import scan_all
from tests.support import invoke_http
from tests.support.api import authorize
from tests.support.metrics import (
    api_metrics,
    assert_matches_recomputation,
    ingest,
    metrics_messages,
)


def test_aggregates_match_a_recomputation_from_the_raw_events(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events = demo.generate(600, seed=3) + demo.subscription_book(12, seed=3)
    ingest(webhook_handler, org, events)

    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)

    assert_matches_recomputation(org.org_id, events)


def test_duplicates_and_redeliveries_never_count_twice(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # Given the same events sent twice (the second time as duplicates) and every message
    # delivered twice, in shuffled order
    events = demo.generate(300, seed=11) + demo.subscription_book(10, seed=11)
    ingest(webhook_handler, org, events, batch=100)
    ingest(webhook_handler, org, events[:150], batch=50)
    messages = metrics_messages(stack)
    deliveries = messages + messages
    random.Random(5).shuffle(deliveries)

    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in deliveries:
            aggregator.handle(message_id, body)

    assert_matches_recomputation(org.org_id, events)


def test_the_same_events_in_two_different_messages_count_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # A producer retry that re-queues events already queued (same events, new message ids)
    events = demo.generate(200, seed=4)
    ingest(webhook_handler, org, events)
    messages = metrics_messages(stack)

    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in messages:
            aggregator.handle(message_id, body)
            aggregator.handle(message_id + "-requeued", body)

    assert_matches_recomputation(org.org_id, events)


def sent(
    stack: Stack, org: CreatedOrganization, handler: Any, n: int, seed: int, batch: int = 500
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """`n` demo events sent in requests of `batch`, and the metrics messages they make."""
    events = demo.generate(n, seed=seed)
    ingest(handler, org, events, batch=batch)
    return events, metrics_messages(stack)


def test_a_crash_between_items_loses_and_doubles_nothing(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events, [(message_id, body)] = sent(stack, org, webhook_handler, 200, seed=8)
    client = aws.dynamodb()
    real = client.transact_write_items
    calls = {"n": 0}

    def crash_on_the_second(**request: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the Lambda was stopped")
        return real(**request)

    # Given a first delivery that applied some counter items and crashed
    with (
        mock.patch.object(metrics_store, "TRANSACTION_ITEMS", 10),
        mock.patch.object(client, "transact_write_items", crash_on_the_second),
        pytest.raises(RuntimeError),
        iam.acting_as("MetricsAggregateFunction"),
    ):
        aggregator.handle(message_id, body)
    assert calls["n"] == 2

    # When SQS delivers the message again
    with (
        mock.patch.object(metrics_store, "TRANSACTION_ITEMS", 10),
        iam.acting_as("MetricsAggregateFunction"),
    ):
        aggregator.handle(message_id, body)

    # Then every event counts exactly once, and each transaction wrote one marker
    assert_matches_recomputation(org.org_id, events)
    markers = [
        i for i in scan_all(stack.physical["MetricsTable"]["Ref"])
        if i["pk"]["S"] == f"applied#{message_id}"
    ]  # fmt: skip
    days = [d for m in markers for d in m["days"]["SS"]]
    assert len(days) == len(set(days))
    assert len(markers) == -(-len(days) // 10)


def test_a_delivery_racing_another_for_the_same_chunk_applies_only_the_rest(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events, [(message_id, body)] = sent(stack, org, webhook_handler, 150, seed=12)
    with iam.acting_as("MetricsAggregateFunction"):
        aggregator.handle(message_id, body)
        # A second delivery that read the markers before the first one's transaction
        # committed: its transaction is cancelled on the marker, it reads them again and
        # finds nothing left to apply.
        real = metrics_store._applied
        stale = iter([(set(), 0)])
        with mock.patch.object(
            metrics_store, "_applied", lambda t, m: next(stale, None) or real(t, m)
        ):
            assert aggregator.handle(message_id, body) == 0

    assert_matches_recomputation(org.org_id, events)


def test_markers_earlier_versions_wrote_per_counter_item_still_stop_a_second_apply(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events, [(message_id, body)] = sent(stack, org, webhook_handler, 150, seed=13)
    table = stack.physical["MetricsTable"]["Ref"]
    with iam.acting_as("MetricsAggregateFunction"):
        org_profile = organizations.get_organization(org.org_id)
        deltas = aggregator.compute_deltas(
            org.org_id, message_id, body["events"], org_profile.retention_days, body["webhook_id"]
        )
        # An earlier version applied the first days, each with a marker of its own, then died.
        first = sorted(deltas.by_day)[:5]
        shard = metrics_store.shard_of(message_id)
        for day in first:
            key = metrics_store.counter_key(org.org_id, shard, day)
            counters = {k: v for k, v in deltas.by_day[day].items() if v}
            update = metrics_store._update(table, key, counters)
            marker = {
                "Put": {
                    "TableName": table,
                    "Item": {
                        "pk": {"S": f"applied#{message_id}"},
                        "sk": {"S": f"{key['pk']['S']}#{key['sk']['S']}"},
                    },
                }
            }
            aws.dynamodb().transact_write_items(TransactItems=[update, marker])
        # The redelivery reaches this version.
        assert aggregator.handle(message_id, body) == len(deltas.by_day) - len(first)

    assert_matches_recomputation(org.org_id, events)


def test_concurrent_writers_lose_and_double_nothing(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events = demo.generate(400, seed=21)
    ingest(webhook_handler, org, events, batch=50)
    messages = metrics_messages(stack)
    work = messages + messages  # every message handled twice, by different threads
    random.Random(1).shuffle(work)
    errors: list[BaseException] = []

    def worker(share: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            with iam.acting_as("MetricsAggregateFunction"):
                for message_id, body in share:
                    aggregator.handle(message_id, body)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    # DynamoDB applies a transaction atomically; moto's in-process copy of the table during a
    # transaction is not thread-safe, so only that call is serialised. Claims, reads and the
    # ordering between writers stay concurrent.
    client = aws.dynamodb()
    transact = client.transact_write_items
    lock = threading.Lock()

    def atomic_transaction(**kwargs: Any) -> Any:
        with lock:
            return transact(**kwargs)

    with mock.patch.object(client, "transact_write_items", atomic_transaction):
        threads = [threading.Thread(target=worker, args=(work[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert_matches_recomputation(org.org_id, events)


def call_api(handler: Any, authorizer_handler: Any, api_key: str, raw_query: str) -> Any:
    context = authorize(authorizer_handler, api_key)["context"]
    event = http_event(
        "GET",
        "/v1/metrics",
        route_key="GET /v1/metrics",
        raw_query=raw_query,
        headers={"authorization": f"Bearer {api_key}"},
        authorizer=context,
    )
    return invoke_http(handler, "MetricsApiFunction", event)


@pytest.fixture
def metrics_handler(stack: Stack) -> Any:
    from metrics_api import app

    return app.lambda_handler


@pytest.mark.parametrize(
    ("raw_query", "fragment"),
    [
        ("from=2026-06-01&to=2026-05-01", "must not be after"),
        ("from=2023-01-01&to=2026-06-01", "at most 3 years"),
        ("from=2026-05-01&to=2026-06-01&granularity=hour", "granularity"),
        ("from=yesterday&to=2026-06-01", "from"),
        ("to=2026-06-01", "from"),
        ("from=2026-05-01&to=2026-06-01&breakdown=shoe_size", "breakdown"),
        ("from=2026-05-01&to=2026-06-01&surprise=1", "surprise"),
    ],
)
def test_invalid_queries_are_400_problems(
    stack: Stack,
    org: CreatedOrganization,
    metrics_handler: Any,
    authorizer_handler: Any,
    raw_query: str,
    fragment: str,
) -> None:
    response = call_api(metrics_handler, authorizer_handler, org.api_key, raw_query)

    assert response.status == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json["detail"]


def test_metrics_need_the_scope_and_stay_in_the_callers_organization(
    stack: Stack,
    org: CreatedOrganization,
    other_org: CreatedOrganization,
    webhook_handler: Any,
    metrics_handler: Any,
    authorizer_handler: Any,
) -> None:
    ingest(webhook_handler, other_org, demo.generate(100, seed=2))
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)
    exports_only = organizations.create_api_key(org.org_id, [Scope.EXPORTS_READ])

    forbidden = call_api(
        metrics_handler, authorizer_handler, exports_only.api_key, "from=2026-05-01&to=2026-10-31"
    )
    own = call_api(
        metrics_handler,
        authorizer_handler,
        org.api_key,
        "from=2026-05-01&to=2026-10-31&org_id=" + other_org.org_id,
    )
    mine = call_api(
        metrics_handler, authorizer_handler, org.api_key, "from=2026-05-01&to=2026-10-31"
    )
    theirs = call_api(
        metrics_handler, authorizer_handler, other_org.api_key, "from=2026-05-01&to=2026-10-31"
    )

    assert forbidden.status == 403
    assert own.status == 400  # the organization comes from the key; no parameter can change it
    assert mine.status == 200
    assert mine.json["org_id"] == org.org_id
    assert mine.json["totals"]["signups"]["total"] == 0
    assert theirs.json["totals"]["signups"]["total"] > 0


def test_answer_states_definitions_periods_and_undefined_values(
    stack: Stack, org: CreatedOrganization, metrics_handler: Any, authorizer_handler: Any
) -> None:
    response = call_api(
        metrics_handler,
        authorizer_handler,
        org.api_key,
        "from=2026-05-13&to=2026-05-20&granularity=week&breakdown=country",
    )

    assert response.status == 200
    body = response.json
    assert body["from"] == "2026-05-11"  # whole ISO weeks
    assert body["to"] == "2026-05-24"
    assert [p["period"] for p in body["periods"]] == ["2026-W20", "2026-W21"]
    assert set(body["definitions"]) >= {
        "cac",
        "clv",
        "k_factor",
        "trial_to_paid",
        "seasonal_conversion",
    }
    empty = body["periods"][0]["metrics"]
    assert empty["trial_to_paid"]["value"] is None
    assert empty["trial_to_paid"]["reason"]
    assert empty["k_factor"]["value"] is None
    assert empty["breakdown"] == {}


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(min_value=0, max_value=100_000),
    size=st.integers(min_value=20, max_value=120),
    duplicate=st.booleans(),
    redeliver=st.booleans(),
    shuffle=st.booleans(),
)
def test_property_aggregates_equal_recomputation_for_random_streams(
    stack: Stack,
    webhook_handler: Any,
    seed: int,
    size: int,
    duplicate: bool,
    redeliver: bool,
    shuffle: bool,
) -> None:
    """Whatever the arrival order (shuffled: a plan change may arrive after the cancellation
    that followed it), duplicates and redeliveries, the aggregates, MRR and its movements
    included, equal the recomputation from the raw events."""
    org = organizations.create_organization(f"Property {seed}")
    tag = f"p{seed}"
    events = demo.generate(size, seed=seed, org_tag=tag)
    events += demo.subscription_book(8, seed=seed, org_tag=tag)
    if shuffle:
        random.Random(seed).shuffle(events)
    ingest(webhook_handler, org, events, batch=37)
    if duplicate:
        ingest(webhook_handler, org, random.Random(seed).sample(events, len(events) // 2), batch=29)
    messages = metrics_messages(stack)
    if redeliver:
        messages += random.Random(seed).sample(messages, len(messages) // 2 + 1)

    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in messages:
            aggregator.handle(message_id, body)

    assert_matches_recomputation(org.org_id, events)


def test_daily_digest_and_alerts_reach_slack_as_block_kit(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from devstack.sink import Sink
    from success_metrics import caches, clock
    from success_metrics.metrics import digest
    from success_metrics.models.organizations import AlertRule

    monkeypatch.setenv("ALLOW_LOOPBACK_WEBHOOKS", "true")
    monkeypatch.setenv("SLACK_ALLOWED_HOSTS", "hooks.slack.com,127.0.0.1")  # as devstack
    caches.reset_all()
    events = demo.generate(400, seed=9)
    ingest(webhook_handler, org, events)
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)
    busiest = max(
        {e["occurred_at"][:10] for e in events},
        key=lambda d: sum(e["occurred_at"][:10] == d for e in events),
    )
    signups = sum(
        e["type"] == "user.signed_up" and e["occurred_at"][:10] == busiest for e in events
    )
    morning = datetime.fromisoformat(busiest).replace(tzinfo=UTC).timestamp() + 86400 + 7 * 3600
    with Sink() as sink:
        organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/digest")
        organizations.set_alert(org.org_id, AlertRule(metric="signups", op=">=", value=Decimal(0)))
        organizations.set_alert(org.org_id, AlertRule(metric="sessions", op="<", value=Decimal(0)))

        with (
            mock.patch.object(clock, "now", return_value=morning),
            iam.acting_as("DailyDigestFunction"),
        ):
            summary = digest.run(clock.now())

        posted = [json.loads(r["body"]) for r in sink.requests("/services/") if r["status"] == 200]
    assert summary["digests"] == 1
    assert summary["alerts"] == 1  # signups >= 0 fires; sessions < 0 cannot
    digest_message, alert = posted
    assert digest_message["blocks"][0]["type"] == "header"
    assert busiest in digest_message["blocks"][0]["text"]["text"]
    fields = digest_message["blocks"][1]["fields"]
    assert fields[0]["text"].startswith("*Signups*\nyesterday " + str(signups))
    assert "signups was" in alert["text"]


def _subscription_event(n: int, kind: str, day: str, amount: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": f"evt_late_{n}",
        "type": f"supplier.subscription_{kind}",
        "occurred_at": f"{day}T09:00:00Z",
        "user_id": "sup_late",
        "user_type": "supplier",
        "properties": {"plan": "pro"},
    }
    if amount is not None:
        event["revenue"] = {"amount": amount, "currency": "EUR"}
    return event


def test_a_late_plan_change_moves_mrr_from_churn_to_expansion_exactly_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # A supplier started at 100 in May and cancelled in July: new +100, churn -100.
    first = [
        _subscription_event(1, "started", "2026-05-10", "100.00"),
        _subscription_event(3, "cancelled", "2026-07-20"),
    ]
    ingest(webhook_handler, org, first)
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)

    # The upgrade to 150 in June arrives afterwards; the first delivery of its message dies
    # after the ledger is written and before the counters are.
    late = [_subscription_event(2, "changed", "2026-06-15", "150.00")]
    ingest(webhook_handler, org, late)
    [(message_id, body)] = metrics_messages(stack)
    with (
        mock.patch.object(aggregator, "apply", side_effect=RuntimeError("stopped")),
        pytest.raises(RuntimeError),
        iam.acting_as("MetricsAggregateFunction"),
    ):
        aggregator.handle(message_id, body)
    with iam.acting_as("MetricsAggregateFunction"):
        aggregator.handle(message_id, body)  # SQS delivers it again
        aggregator.handle(message_id, body)  # and once more, for good measure

    answer = api_metrics(
        org.org_id, {"from": "2026-05-01", "to": "2026-07-31", "granularity": "month"}
    )
    money = {p["period"]: p["metrics"]["money"]["EUR"] for p in answer["periods"]}
    assert money["2026-05"]["mrr_movements"]["new"] == "100.00"
    assert money["2026-06"]["mrr_movements"]["expansion"] == "50.00"
    assert money["2026-06"]["mrr_end"] == "150.00"
    assert money["2026-07"]["mrr_movements"]["churn"] == "-150.00"
    assert (money["2026-07"]["mrr_start"], money["2026-07"]["mrr_end"]) == ("150.00", "0.00")
    assert money["2026-07"]["customer_churn_rate"]["value"] == 1.0
    assert_matches_recomputation(org.org_id, first + late)


def test_running_totals_outlive_the_retention_of_the_events(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # An organization keeping 30 days of events, whose supplier subscribed ten months ago:
    # the event is long past its retention, but the MRR it started is still there.
    organizations.set_limits(org.org_id, retention_days=30)
    started = _subscription_event(1, "started", "2026-01-10", "100.00")
    ingest(webhook_handler, org, [started])
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)

    answer = api_metrics(
        org.org_id, {"from": "2026-11-01", "to": "2026-11-30", "granularity": "month"}
    )
    [period] = answer["periods"]
    assert period["metrics"]["money"]["EUR"]["mrr_start"] == "100.00"
    items = stack_counter_items(stack, org.org_id)
    assert items
    assert all("expires_at" not in item for item in items)


def test_a_counter_item_written_with_an_expiry_loses_it_when_next_updated(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    # A counter item as an earlier version wrote it, with the retention as a TTL.
    ingest(webhook_handler, org, [_subscription_event(1, "started", "2026-03-02", "40.00")])
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)
    ingest(webhook_handler, org, [_subscription_event(2, "changed", "2026-03-02", "60.00")])
    [(message_id, body)] = metrics_messages(stack)
    key = metrics_store.counter_key(
        org.org_id, metrics_store.shard_of(message_id), date(2026, 3, 2)
    )
    aws.dynamodb().update_item(
        TableName=stack.physical["MetricsTable"]["Ref"],
        Key=key,
        UpdateExpression="SET expires_at = :later",
        ExpressionAttributeValues={":later": {"N": "4102444800"}},  # 2100: not expired yet
    )

    with iam.acting_as("MetricsAggregateFunction"):
        aggregator.handle(message_id, body)

    [updated] = [
        i
        for i in stack_counter_items(stack, org.org_id)
        if i["pk"] == key["pk"] and i["sk"] == key["sk"]
    ]
    assert "expires_at" not in updated
    assert len(updated) > 2
    answer = api_metrics(
        org.org_id, {"from": "2026-03-01", "to": "2026-03-31", "granularity": "month"}
    )
    assert answer["periods"][0]["metrics"]["money"]["EUR"]["mrr_end"] == "60.00"


def stack_counter_items(stack: Stack, org_id: str) -> list[dict[str, Any]]:
    table = stack.physical["MetricsTable"]["Ref"]
    pages = aws.dynamodb().get_paginator("scan").paginate(TableName=table)
    return [i for p in pages for i in p["Items"] if i["pk"]["S"].startswith(f"agg#{org_id}#")]


def test_a_ledger_outlives_a_short_retention_by_a_yearly_billing_interval(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    organizations.set_limits(org.org_id, retention_days=30)
    ingest(webhook_handler, org, [_subscription_event(1, "started", "2026-03-02", "40.00")])
    with iam.acting_as("MetricsAggregateFunction"):
        for message_id, body in metrics_messages(stack):
            aggregator.handle(message_id, body)

    table = stack.physical["MetricsClaimsTable"]["Ref"]
    item = aws.dynamodb().get_item(
        TableName=table, Key={"pk": {"S": f"{org.org_id}|ledger|sub|sup_late"}}
    )["Item"]
    kept_days = (int(item["expires_at"]["N"]) - time.time()) / 86400
    assert 399 < kept_days <= 400


def test_a_requests_event_claims_are_one_item_and_old_messages_still_count_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events = demo.generate(350, seed=9)
    ingest(webhook_handler, org, events[:250], batch=250)
    ingest(webhook_handler, org, events[250:], batch=100)
    [(first_id, first), (_, second)] = sorted(
        metrics_messages(stack), key=lambda m: -len(m[1]["events"])
    )

    with iam.acting_as("MetricsAggregateFunction"):
        aggregator.handle(first_id, first)
        # A message queued before messages carried their request's id (or an old dead letter
        # replayed) claims event by event; queued twice, its events still count once.
        legacy = {k: v for k, v in second.items() if k != "webhook_id"}
        aggregator.handle("old-1", legacy)
        aggregator.handle("old-2", legacy)

    assert_matches_recomputation(org.org_id, events)
    claims = scan_all(stack.physical["MetricsClaimsTable"]["Ref"])
    [request_item] = [
        c for c in claims if c["pk"]["S"] == f"{org.org_id}|events|{first['webhook_id']}"
    ]
    # 250 events claimed in one item (three writes: 100 claims per expression), by the message.
    claimed = {k: v["S"] for k, v in request_item.items() if k not in ("pk", "expires_at")}
    assert set(claimed) == {e["id"] for e in first["events"]}
    assert set(claimed.values()) == {first_id}
    per_event = [c for c in claims if c["pk"]["S"].startswith(f"{org.org_id}|event|")]
    assert len(per_event) == 100
    assert {c["mid"]["S"] for c in per_event} == {"old-1"}


def test_a_subjects_facts_are_packed_by_month_and_earlier_fact_items_still_count_once(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    events, messages = sent(stack, org, webhook_handler, 400, seed=21, batch=50)
    earlier, later = messages[: len(messages) // 2], messages[len(messages) // 2 :]

    def as_earlier_versions(claims: Claims, keys: Any) -> set[str]:
        """How facts were claimed before they were packed: one conditional put each."""
        return claims.claim_all([Token(k, {}) for k in keys])

    with iam.acting_as("MetricsAggregateFunction"):
        with mock.patch.object(Claims, "claim_facts", as_earlier_versions):
            for message_id, body in earlier:
                aggregator.handle(message_id, body)
        # After the upgrade: the later messages, and every earlier one delivered again,
        # claim in packed items; the facts earlier versions claimed are not claimed again.
        for message_id, body in later + earlier:
            aggregator.handle(message_id, body)

    assert_matches_recomputation(org.org_id, events)
    items = {
        i["pk"]["S"].split("|", 1)[1]: i
        for i in scan_all(stack.physical["MetricsClaimsTable"]["Ref"])
    }
    earlier_ids = {m for m, _ in earlier}
    one_fact_items = [i for k, i in items.items() if k.startswith("dist|")]
    assert one_fact_items
    assert {i["mid"]["S"] for i in one_fact_items} <= earlier_ids  # none written since
    # A user's day, week and month facts of a measure sit in one item per month, its seasons
    # in one item; each attribute names its claiming message.
    [(user, _)] = Counter(e["user_id"] for e in events if e.get("user_id")).most_common(1)
    days = {e["occurred_at"][:10] for e in events if e.get("user_id") == user}
    months = {k: i for k, i in items.items() if k.startswith(f"facts|active|{user}|")}
    packed = {a.split("|")[1]: v["S"] for i in months.values() for a, v in i.items()
              if a.startswith("day|")}  # fmt: skip
    from_earlier = {
        k.split("|")[2]
        for k in items
        if k.startswith("dist|day|") and k.endswith(f"|active|{user}")
    }
    assert set(packed) | from_earlier == days
    assert not set(packed) & from_earlier  # each day claimed once, in one form
    assert set(packed.values()) <= {m for m, _ in messages}
    for key, item in months.items():
        month = key.rsplit("|", 1)[1]
        for attribute in set(item) - {"pk", "expires_at"}:
            granularity, period = attribute.split("|")
            assert granularity in ("day", "week", "month")
            if granularity != "week":
                assert period.startswith(month)
    seasons = items.get(f"facts|active|{user}", {})
    assert {a.split("|")[0] for a in seasons if a not in ("pk", "expires_at")} <= {"season"}
