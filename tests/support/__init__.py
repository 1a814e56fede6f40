"""Helpers shared by the test tiers: sample events, signing, invoking handlers in-process."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from devstack.lambda_events import LambdaContext, ingest_event
from success_metrics import signing

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> Any:
    """A sample from events/ (path relative to it, without .json)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def sample_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = load_event("samples/subscription_started")
    event["id"] = "evt_" + uuid.uuid4().hex
    event.update(overrides)
    return event


def signed_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    headers = signing.sign_headers(
        secret, msg_id or "msg_" + uuid.uuid4().hex, timestamp or int(time.time()), body
    )
    headers["content-type"] = "application/json"
    return headers


class Response:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.status = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        body = raw.get("body") or ""
        self.json: Any = json.loads(body) if body else None

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.json})"


def invoke_http(
    handler: Any, function_name: str, event: dict[str, Any], timeout: int = 29
) -> Response:
    return Response(handler(event, LambdaContext(function_name, timeout)))


def post_events(
    handler: Any,
    org_id: str,
    secret: str,
    payload: Any,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> Response:
    raw = body if body is not None else json.dumps(payload).encode()
    sent = (
        headers
        if headers is not None
        else signed_headers(secret, raw, msg_id=msg_id, timestamp=timestamp)
    )
    event = ingest_event(org_id, sent, raw)
    return invoke_http(handler, "WebhookReceiveFunction", event)


def forwardable(events: list[dict[str, Any]]) -> set[str]:
    """Ids of the events Mixpanel and GA4 may receive when every consent decision among
    `events` is recorded before any of them is routed: the event's own analytics flag, unless
    the user's latest decision withdrew analytics."""
    from success_metrics.sync import privacy

    latest: dict[str, bool] = {}
    for event in sorted(events, key=lambda e: e["occurred_at"]):
        if event["type"] == "consent.updated" and "analytics" in event["consent"]:
            latest[event.get("user_id") or event.get("anonymous_id")] = event["consent"][
                "analytics"
            ]
    return {
        e["id"]
        for e in events
        if privacy.has_analytics_consent(e)
        and latest.get(e.get("user_id") or e.get("anonymous_id")) is not False
    }
