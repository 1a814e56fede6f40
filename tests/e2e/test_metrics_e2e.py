"""Metrics end to end: demo events in through the signed API, /v1/metrics out, digest to Slack."""

from __future__ import annotations

import time
from typing import Any

import httpx

from devstack import demo
from devstack.seed import post_signed
from tests.e2e.conftest import RunningStack
from tests.reference_metrics import from_api, recompute


def test_metrics_api_agrees_with_a_recomputation_of_the_same_events(
    stack: RunningStack, http: httpx.Client
) -> None:
    # Given a fresh organization and a demo season sent through the signed API
    created = stack.smctl_json("org", "create", "E2E Metrics Weddings")
    stack.smctl(
        "org",
        "set-limits",
        created["org_id"],
        "--requests-per-hour",
        "1000",
        "--events-per-hour",
        "100000",
    )
    events = demo.generate(250, seed=5, org_tag="e2e")
    for batch in demo.batches(events, 100):
        response = post_signed(
            http, stack.api_url, created["org_id"], created["webhook_secret"], {"events": batch}
        )
        assert response.status_code == 202, response.text
    expected = recompute(events)

    # When the metrics consumer has caught up
    def current() -> dict[str, Any]:
        response = http.get(
            f"{stack.api_url}/v1/metrics",
            params={"from": "2026-05-01", "to": "2026-10-31", "granularity": "month"},
            headers={"Authorization": f"Bearer {created['api_key']}"},
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    deadline = time.monotonic() + 120
    answer = current()
    while from_api(answer) != expected and time.monotonic() < deadline:
        time.sleep(1)
        answer = current()

    # Then every figure equals the recomputation from the raw events
    assert from_api(answer) == expected
    assert answer["org_id"] == created["org_id"]


def test_daily_digest_schedule_posts_block_kit_to_the_demo_slack(
    stack: RunningStack, http: httpx.Client
) -> None:
    def slack_posts() -> list[dict[str, Any]]:
        found = http.get(
            f"{stack.sink_url}/_sink/requests", params={"path": "/services/TDEMO"}
        ).json()
        return list(found["requests"])

    before = len(slack_posts())

    ran = stack.smctl_json("schedule", "run", "DailyDigest")

    assert ran["result"]["digests"] >= 1
    posts = slack_posts()
    assert len(posts) > before
    assert '"type": "header"' in posts[-1]["body"] or '"type":"header"' in posts[-1]["body"]
