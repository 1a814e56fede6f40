"""Signed ingest, the metrics queue, and the check of the aggregates against a recomputation."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from devstack.provision import Stack
from success_metrics import aws
from success_metrics.metrics import cohorts, query
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from tests.reference_metrics import (
    from_api,
    mrr_from_api,
    recompute,
    recompute_funnel,
    recompute_mrr,
)
from tests.support import post_events

SEASON = {"from": "2026-05-01", "to": "2026-10-31", "granularity": "month"}


def metrics_messages(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    """Every message on the metrics queue, removed from it: (message id, body)."""
    sqs = aws.sqs()
    url = stack.physical["MetricsQueue"]["Ref"]
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
            "Messages", []
        )
        if not got:
            return found
        for message in got:
            found.append((message["MessageId"], json.loads(message["Body"])))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def ingest(
    handler: Any, org: CreatedOrganization, events: list[dict[str, Any]], batch: int = 250
) -> None:
    organizations.set_limits(org.org_id, requests_per_hour=100_000, events_per_hour=10_000_000)
    for start in range(0, len(events), batch):
        response = post_events(
            handler, org.org_id, org.webhook_secret, {"events": events[start : start + batch]}
        )
        assert response.status == 202, response


def assert_matches_recomputation(org_id: str, events: list[dict[str, Any]]) -> None:
    answer = api_metrics(org_id, SEASON)
    months = [p["period"] for p in answer["periods"]]
    got = from_api(answer)
    # Events before the season (the subscription book) count in the months they fall in.
    expected = {month: v for month, v in recompute(events).items() if month in months}
    mrr_got, mrr_expected = mrr_from_api(answer), recompute_mrr(events, months)
    assert mrr_got == mrr_expected, _mrr_diff(mrr_got, mrr_expected)
    season = cohorts.RangeQuery.model_validate({"from": SEASON["from"], "to": SEASON["to"]})
    funnel = cohorts.funnel_answer(org_id, season)
    expected_funnel = recompute_funnel(events, SEASON["from"], SEASON["to"])
    assert [s["couples"] for s in funnel["steps"]] == expected_funnel
    for period in answer["periods"]:  # the invariant, to the cent, every period and currency
        for currency, money in period["metrics"]["money"].items():
            moves = money["mrr_movements"]
            total = Decimal(money["mrr_start"]) + sum(
                Decimal(moves[k])
                for k in ("new", "expansion", "contraction", "churn", "reactivation")
            )
            assert total == Decimal(money["mrr_end"]), (period["period"], currency, money)
    diffs = [
        f"{month} {name}: aggregates {got.get(month, {}).get(name)} != raw {expected.get(month, {}).get(name)}"
        for month in sorted(set(got) | set(expected))
        for name in sorted(set(got.get(month, {})) | set(expected.get(month, {})))
        if got.get(month, {}).get(name) != expected.get(month, {}).get(name)
    ]
    assert not diffs, "\n".join(diffs)


def api_metrics(org_id: str, params: dict[str, str]) -> dict[str, Any]:
    parsed = query.MetricsQuery.model_validate(params)
    return query.metrics(org_id, parsed, organizations.get_organization(org_id).gross_margin)


def _mrr_diff(got: dict[str, Any], expected: dict[str, Any]) -> str:
    return "\n".join(
        f"{month} {currency}: aggregates {got.get(month, {}).get(currency)} != raw "
        f"{expected.get(month, {}).get(currency)}"
        for month in sorted(set(got) | set(expected))
        for currency in sorted(set(got.get(month, {})) | set(expected.get(month, {})))
        if got.get(month, {}).get(currency) != expected.get(month, {}).get(currency)
    )
