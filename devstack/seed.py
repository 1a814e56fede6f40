"""Seeding the local stack: a demo organization, and its demo season sent through the signed API."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from success_metrics import signing
from success_metrics.stores import organizations

DEMO_NAME = "Demo Weddings Co"


DEMO_DESTINATIONS: dict[str, dict[str, Any]] = {
    "mixpanel": {
        "kind": "mixpanel",
        "project_token": "demo-token",
        "api_secret": "demo-secret",
        "project_id": "1000001",
        "gdpr_token": "demo-gdpr-oauth-token",
    },
    "ga4": {
        "kind": "ga4",
        "measurement_id": "G-DEMO0001",
        "api_secret": "demo-ga4-secret",
        "property_id": "100000001",
        "oauth_client_id": "demo-client.apps.googleusercontent.com",
        "oauth_client_secret": "demo-oauth-client-secret",
        "oauth_refresh_token": "demo-refresh-token",
    },
    "slack": {"kind": "slack", "webhook_url": "{sink}/services/TDEMO/BDEMO/alerts"},
    "webhook": {"kind": "webhook", "url": "{sink}/webhooks/demo", "event_types": ["*"]},
}


def create_demo_organization(sink_url: str) -> dict[str, str]:
    from success_metrics.models.destinations import DestinationRequest
    from success_metrics.stores import destinations

    created = organizations.create_organization(DEMO_NAME)
    organizations.set_slack_webhook(created.org_id, f"{sink_url}/services/TDEMO/BDEMO/digest")
    # Every destination points at the sink (platform base URLs are set to it by the runner).
    for dest_id, settings in DEMO_DESTINATIONS.items():
        filled = {
            k: v.format(sink=sink_url) if isinstance(v, str) else v for k, v in settings.items()
        }
        request = DestinationRequest.model_validate(
            {"name": f"Demo {settings['kind']}", "settings": filled}
        )
        destinations.put(created.org_id, dest_id, request)
    # High enough for the demo traffic, the end-to-end tests and the load benchmark.
    organizations.set_limits(
        created.org_id,
        requests_per_hour=1_000_000,
        events_per_hour=100_000_000,
        exports_per_hour=1_000,
    )
    return {
        "name": DEMO_NAME,
        "org_id": created.org_id,
        "api_key": created.api_key,
        "key_id": created.key_id,
        "webhook_secret": created.webhook_secret,
    }


def post_signed(
    client: httpx.Client,
    api_url: str,
    org_id: str,
    secret: str,
    payload: Any,
    msg_id: str | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = signing.sign_headers(
        secret, msg_id or "msg_" + uuid.uuid4().hex, int(time.time()), body
    )
    headers["content-type"] = "application/json"
    return client.post(f"{api_url}/v1/organizations/{org_id}/events", content=body, headers=headers)


def recent_demo_events(size: int, seed: int = 8) -> list[dict[str, Any]]:
    """Events of the last two days (not today), so GA4, which refuses events older than 72 h,
    receives some too."""
    from devstack import demo

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return demo.generate(
        size,
        seed=seed,
        season_start=yesterday - timedelta(days=1),
        season_end=yesterday,
        org_tag="recent",
    )


def load_demo_events(
    api_url: str, org: dict[str, str], size: int, seed: int = 7, recent: int = 0
) -> dict[str, int]:
    """The demo organization's paying suppliers (`demo.subscription_book`), the demo season
    (`size` events) and `recent` events of the last two days."""
    from devstack import demo

    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "requests": 0}
    events = itertools.chain(demo.organization_events(size, seed=seed), recent_demo_events(recent))
    with httpx.Client(timeout=120) as client:
        for batch in demo.batches(events, 500):
            response = post_signed(
                client, api_url, org["org_id"], org["webhook_secret"], {"events": batch}
            )
            if response.status_code != 202:
                raise RuntimeError(
                    f"demo load refused: {response.status_code} {response.text[:300]}"
                )
            answer = response.json()
            totals["accepted"] += answer["accepted"]
            totals["duplicates"] += answer["duplicates"]
            totals["rejected"] += len(answer["rejected"])
            totals["requests"] += 1
    return totals
