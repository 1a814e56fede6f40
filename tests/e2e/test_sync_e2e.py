"""Platform sync end to end: the demo season reaches the sink as Mixpanel and webhook requests."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from devstack import demo
from success_metrics.sync import platforms, privacy
from tests.e2e.conftest import RunningStack
from tests.support import forwardable


def sink_requests(stack: RunningStack, http: httpx.Client, path: str) -> list[dict[str, Any]]:
    found = http.get(f"{stack.sink_url}/_sink/requests", params={"path": path}).json()
    return list(found["requests"])


def test_demo_events_reach_mixpanel_with_consent_and_the_webhook(
    stack: RunningStack, http: httpx.Client
) -> None:
    events = demo.organization_events(int(os.environ.get("SM_E2E_DEMO_SIZE", "300")))
    # A user's latest consent decision that withdraws analytics stops forwarding of all their
    # events still to route (the demo season is loaded in one request, so every decision is
    # recorded before the router sees any event); otherwise each event's own flag decides.
    consented = {platforms.insert_id(i) for i in forwardable(events)}
    refused = {platforms.insert_id(e["id"]) for e in events} - consented

    def mixpanel_ids() -> set[str]:
        return {
            record["properties"]["$insert_id"]
            for request in sink_requests(stack, http, "/import")
            if request["status"] == 200
            for record in json.loads(request["body"])
        }

    def webhook_ids() -> set[str]:
        bodies = [json.loads(r["body"]) for r in sink_requests(stack, http, "/webhooks/demo")]
        return {event["id"] for body in bodies for event in body["events"]}

    all_ids = {e["id"] for e in events}
    # the customer's own endpoint needs analytics consent too (the default for webhooks)
    hooked = forwardable(events)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        consented <= mixpanel_ids() and hooked <= webhook_ids()
    ):
        time.sleep(1)

    seen = mixpanel_ids()
    assert consented <= seen
    assert not refused & seen  # no analytics consent: nothing sent to analytics
    received = webhook_ids()
    assert hooked <= received
    assert not (all_ids - hooked) & received  # no consent: not sent to the webhook either


def test_recent_demo_events_reach_ga4_and_old_ones_are_skipped(
    stack: RunningStack, http: httpx.Client
) -> None:
    from devstack.seed import recent_demo_events

    recent = {e["id"] for e in recent_demo_events(100) if privacy.has_analytics_consent(e)}

    def ga4_event_ids() -> set[str]:
        return {
            event["params"]["event_id"]
            for request in sink_requests(stack, http, "/mp/collect")
            for event in json.loads(request["body"])["events"]
        }

    deadline = time.monotonic() + 120
    while not recent <= ga4_event_ids() and time.monotonic() < deadline:
        time.sleep(1)

    sent = ga4_event_ids()
    assert recent <= sent
    assert not {e["id"] for e in demo.generate(300)} & sent  # the season is older than 72 h
    for request in sink_requests(stack, http, "/mp/collect"):
        assert len(json.loads(request["body"])["events"]) <= 25
