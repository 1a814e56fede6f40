"""DynamoDB limits moto does not check, for the packed claims: an UpdateItem expression is at
most 4 KB, the claims item of the largest request (500 events, ids of 128 characters) stays far
under the 400 KB item limit, and so does a subject's busiest month of packed facts."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from success_metrics import aws
from success_metrics.metrics.periods import Granularity, bucket
from success_metrics.stores import claims as claims_store

EXPRESSION_LIMIT = 4096
ITEM_LIMIT = 400 * 1024
MAX_EVENTS = 500  # SPEC: at most 500 events per request


class RecordingTable:
    """Applies SET if_not_exists / REMOVE to one in-memory item, and keeps every request."""

    def __init__(self) -> None:
        self.item: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        names = request["ExpressionAttributeNames"]
        expression = request["UpdateExpression"]
        if expression.startswith("REMOVE"):
            old = {n: self.item.pop(n) for n in names.values() if n in self.item}
            return {"Attributes": old}
        self.item.setdefault("pk", request["Key"]["pk"])
        for name in names.values():
            self.item.setdefault(name, request["ExpressionAttributeValues"][":mid"])
        self.item["expires_at"] = request["ExpressionAttributeValues"][":expires"]
        return {"Attributes": dict(self.item)}


def test_the_largest_requests_claims_fit_dynamodbs_expression_and_item_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = RecordingTable()
    monkeypatch.setattr(aws, "dynamodb", lambda: table)
    monkeypatch.setenv("METRICS_CLAIMS_TABLE", "claims")
    ids = [f"e{i:03d}".ljust(128, "x") for i in range(MAX_EVENTS)]
    message = "3f1c2b9e-5d8a-4c3b-9e2f-7a6b5c4d3e2f"  # an SQS message id

    ours = claims_store.Claims("org_1234567890abcdef", message, 2_000_000_000).claim_in_group(
        claims_store.events_group("msg_" + "w" * 60), ids
    )

    assert ours == set(ids)
    assert len(table.requests) == MAX_EVENTS // claims_store.GROUP_CLAIMS_PER_CALL
    for request in table.requests:
        assert len(request["UpdateExpression"].encode()) <= EXPRESSION_LIMIT
    size = sum(len(k.encode()) + len(json.dumps(v).encode()) for k, v in table.item.items())
    assert size < ITEM_LIMIT / 4


def test_a_subjects_busiest_month_of_packed_facts_stays_a_small_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user active every day of a month, with the longest id: every fact of that measure and
    month lands in one item of about 2 KB (2 write units an update), whatever the events."""
    tables: dict[str, RecordingTable] = {}

    class Tables:
        def update_item(self, **request: Any) -> dict[str, Any]:
            pk = request["Key"]["pk"]["S"]
            return tables.setdefault(pk, RecordingTable()).update_item(**request)

    monkeypatch.setattr(aws, "dynamodb", Tables)
    monkeypatch.setenv("METRICS_CLAIMS_TABLE", "claims")
    user = "u" * 128
    keys = [
        f"dist|{g.value}|{bucket(date(2026, 8, d), g)}|feature:{'f' * 60}|{user}"
        for d in range(1, 32)
        for g in Granularity
    ]
    claims = claims_store.Claims("org_1234567890abcdef", "3f1c2b9e-5d8a-4c3b-9e2f-7a6b5c4d3e2f", 1)
    for key in keys:  # one a message, the worst case for the item's growth
        group, attribute = claims_store.fact_group(key)  # type: ignore[misc]
        claims._claim_in(group, [attribute])

    month = [t for pk, t in tables.items() if pk.endswith("|2026-08")]
    assert len(month) == 1
    size = sum(len(k.encode()) + len(json.dumps(v).encode()) for k, v in month[0].item.items())
    assert size < 2.5 * 1024
    assert all(len(t.item) - 2 <= 38 for t in tables.values())  # days, weeks, month, seasons
