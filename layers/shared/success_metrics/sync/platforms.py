"""Platform adapters: Mixpanel `/import`, GA4 Measurement Protocol, signed customer webhooks.

Each turns outbound event documents (already consent-checked and anonymised) into as few
requests as the platform's documented limits allow, sends them, and classifies every answer:
success, retryable (5xx, 429, timeouts: `Retry-After` is kept), or final (other 4xx).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from success_metrics import signing

MIXPANEL_MAX_EVENTS = 2000
MIXPANEL_MAX_BYTES = 2 * 1024 * 1024  # SPEC §4; Mixpanel's own limit is higher
GA4_MAX_EVENTS = 25
GA4_MAX_BYTES = 130 * 1024 - 1
GA4_MAX_AGE_SECONDS = 72 * 3600
GA4_MAX_PARAMS = 25
GA4_MAX_NAME = 40
GA4_MAX_VALUE = 100
GA4_RESERVED_PREFIXES = ("firebase_", "google_", "ga_")
GA4_RESERVED_NAMES = frozenset(
    {
        "ad_activeview",
        "ad_click",
        "ad_exposure",
        "ad_impression",
        "ad_query",
        "ad_reward",
        "adunit_exposure",
        "app_background",
        "app_clear_data",
        "app_exception",
        "app_remove",
        "app_store_refund",
        "app_store_subscription_cancel",
        "app_store_subscription_convert",
        "app_store_subscription_renew",
        "app_update",
        "app_upgrade",
        "dynamic_link_app_open",
        "dynamic_link_app_update",
        "dynamic_link_first_open",
        "error",
        "first_open",
        "first_visit",
        "in_app_purchase",
        "notification_dismiss",
        "notification_foreground",
        "notification_open",
        "notification_receive",
        "os_update",
        "session_start",
        "session_start_with_rollout",
        "user_engagement",
    }
)
_MIXPANEL_INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_GA4_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Outcome:
    """What one request achieved: per-event results and whether to try again."""

    status: int | None
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # final per-record failures
    skipped: dict[str, str] = field(default_factory=dict)
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify(response: httpx.Response, event_ids: list[str]) -> Outcome:
    if response.status_code < 300:
        return Outcome(response.status_code, delivered=list(event_ids))
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    return Outcome(
        response.status_code,
        retryable=retryable,
        retry_after=_retry_after(response),
        error=f"{response.status_code}: {response.text[:300]}",
        failed={} if retryable else dict.fromkeys(event_ids, f"HTTP {response.status_code}"),
    )


def _epoch(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["occurred_at"].replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------ Mixpanel


def insert_id(event_id: str) -> str:
    """`$insert_id`: the event id when Mixpanel accepts it (<= 36 letters, digits, '-'),
    else a stable 32-character hash of it."""
    if _MIXPANEL_INSERT_ID.match(event_id):
        return event_id
    return hashlib.sha256(event_id.encode()).hexdigest()[:32]


def mixpanel_record(doc: dict[str, Any]) -> dict[str, Any]:
    context = doc.get("context") or {}
    properties: dict[str, Any] = {
        k: v for k, v in (doc.get("properties") or {}).items() if not k.startswith("$")
    }
    properties.update(
        {
            "time": int(_epoch(doc) * 1000),
            "distinct_id": doc.get("user_id") or f"$device:{doc.get('anonymous_id')}",
            "$insert_id": insert_id(doc["id"]),
            "category": doc.get("category"),
            "user_type": doc.get("user_type"),
        }
    )
    if doc.get("user_id"):
        properties["$user_id"] = doc["user_id"]
    if doc.get("anonymous_id"):
        properties["$device_id"] = doc["anonymous_id"]
    if context.get("country"):
        properties["mp_country_code"] = context["country"]
    if context.get("region"):
        properties["$region"] = context["region"]
    if context.get("device"):
        properties["device"] = context["device"]
    if context.get("ip"):
        properties["ip"] = context["ip"]
    if doc.get("revenue"):
        properties["amount"] = float(doc["revenue"]["amount"])
        properties["currency"] = doc["revenue"]["currency"]
    return {
        "event": doc["type"],
        "properties": {k: v for k, v in properties.items() if v is not None},
    }


def mixpanel_batches(docs: list[dict[str, Any]]) -> Iterator[list[tuple[str, bytes]]]:
    """Requests of at most 2000 events and 2 MB of uncompressed JSON: [(event id, json)]."""
    batch: list[tuple[str, bytes]] = []
    size = 2
    for doc in docs:
        encoded = json.dumps(mixpanel_record(doc), separators=(",", ":")).encode()
        if batch and (
            len(batch) == MIXPANEL_MAX_EVENTS or size + len(encoded) + 1 > MIXPANEL_MAX_BYTES
        ):
            yield batch
            batch, size = [], 2
        batch.append((doc["id"], encoded))
        size += len(encoded) + 1
    if batch:
        yield batch


def send_mixpanel(
    client: httpx.Client,
    base_url: str,
    secrets: dict[str, str],
    project_id: str | None,
    batch: list[tuple[str, bytes]],
) -> Outcome:
    body = b"[" + b",".join(encoded for _, encoded in batch) + b"]"
    auth = base64.b64encode(f"{secrets['api_secret']}:".encode()).decode()
    params = {"strict": "1"}
    if project_id:
        params["project_id"] = project_id
    ids = [event_id for event_id, _ in batch]
    response = client.post(
        f"{base_url.rstrip('/')}/import",
        params=params,
        content=gzip.compress(body, compresslevel=5),
        headers={
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Accept": "application/json",
        },
    )
    if response.status_code == 400:
        # strict=1: the valid records were imported; the failed ones are final.
        try:
            failed_records = response.json().get("failed_records") or []
        except ValueError:
            failed_records = []
        if failed_records:
            bad = {int(r["index"]): str(r.get("message", "rejected")) for r in failed_records}
            return Outcome(
                400,
                delivered=[e for i, e in enumerate(ids) if i not in bad],
                failed={ids[i]: reason for i, reason in bad.items() if i < len(ids)},
            )
    return classify(response, ids)


# ------------------------------------------------------------------ GA4


def ga4_name(raw: str) -> str:
    """A GA4 event or parameter name: letters, digits, '_', starting with a letter, <= 40."""
    name = _GA4_NAME_BAD.sub("_", raw)
    if not name or not name[0].isalpha():
        name = "sm_" + name
    if name.lower().startswith(GA4_RESERVED_PREFIXES) or name.lower() in GA4_RESERVED_NAMES:
        name = "sm_" + name
    return name[:GA4_MAX_NAME]


def ga4_event(doc: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"event_id": str(doc["id"])[:GA4_MAX_VALUE]}
    if doc.get("revenue"):
        params["currency"] = doc["revenue"]["currency"]
        params["value"] = float(doc["revenue"]["amount"])
    context = doc.get("context") or {}
    for name in ("country", "device"):
        if context.get(name):
            params[name] = str(context[name])[:GA4_MAX_VALUE]
    for name, value in (doc.get("properties") or {}).items():
        if len(params) >= GA4_MAX_PARAMS:
            break
        scalar = str(value).lower() if isinstance(value, bool) else value
        if isinstance(scalar, str):
            params.setdefault(ga4_name(name), scalar[:GA4_MAX_VALUE])
        elif isinstance(scalar, int | float):
            params.setdefault(ga4_name(name), scalar)
    return {
        "name": ga4_name(doc["type"]),
        "params": params,
        "timestamp_micros": int(_epoch(doc) * 1_000_000),
    }


def ga4_client_id(doc: dict[str, Any]) -> str:
    subject = doc.get("anonymous_id") or doc.get("user_id") or doc["id"]
    digest = int.from_bytes(hashlib.sha256(str(subject).encode()).digest()[:8], "big")
    return f"{digest % 10**10}.{(digest // 10**10) % 10**10}"


def ga4_requests(
    docs: list[dict[str, Any]], now: float
) -> tuple[list[tuple[list[str], dict[str, Any]]], dict[str, str]]:
    """Requests of at most 25 events and < 130 kB, one client per request; and the skipped."""
    skipped: dict[str, str] = {}
    by_client: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for doc in docs:
        if now - _epoch(doc) > GA4_MAX_AGE_SECONDS:
            skipped[doc["id"]] = "older than 72 hours: GA4 does not accept it"
            continue
        by_client.setdefault((ga4_client_id(doc), doc.get("user_id")), []).append(doc)
    requests: list[tuple[list[str], dict[str, Any]]] = []
    for (client_id, user_id), group in by_client.items():
        ids: list[str] = []
        events: list[dict[str, Any]] = []
        for doc in group:
            event = ga4_event(doc)
            candidate = {"client_id": client_id, "events": [*events, event]}
            if user_id:
                candidate["user_id"] = user_id[:256]
            if events and (
                len(events) == GA4_MAX_EVENTS or len(json.dumps(candidate)) > GA4_MAX_BYTES
            ):
                requests.append((ids, _ga4_body(client_id, user_id, events)))
                ids, events = [], []
            ids.append(doc["id"])
            events.append(event)
        if events:
            requests.append((ids, _ga4_body(client_id, user_id, events)))
    return requests, skipped


def _ga4_body(client_id: str, user_id: str | None, events: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"client_id": client_id, "events": events}
    if user_id:
        body["user_id"] = user_id[:256]
    return body


def send_ga4(
    client: httpx.Client,
    base_url: str,
    measurement_id: str,
    secrets: dict[str, str],
    ids: list[str],
    body: dict[str, Any],
    *,
    debug: bool = False,
) -> Outcome:
    path = "/debug/mp/collect" if debug else "/mp/collect"
    response = client.post(
        f"{base_url.rstrip('/')}{path}",
        params={"measurement_id": measurement_id, "api_secret": secrets["api_secret"]},
        json=body,
    )
    return classify(response, ids)


# ------------------------------------------------------------------ customer webhooks


def webhook_body(delivery_id: str, docs: list[dict[str, Any]]) -> bytes:
    payload = {"type": "events.delivered", "delivery_id": delivery_id, "events": docs}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def send_webhook(
    client: httpx.Client,
    url: str,
    signing_secret: str,
    delivery_id: str,
    docs: list[dict[str, Any]],
) -> Outcome:
    """One signed request; `webhook-id` is the delivery id, the same on every retry."""
    body = webhook_body(delivery_id, docs)
    headers = signing.sign_headers(signing_secret, delivery_id, int(time.time()), body)
    headers["content-type"] = "application/json"
    headers["user-agent"] = "SuccessMetrics-Webhooks/1"
    response = client.post(url, content=body, headers=headers)
    return classify(response, [d["id"] for d in docs])
