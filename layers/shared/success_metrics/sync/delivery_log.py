"""The delivery log: one summary per delivery, one record per attempt, and each event's
deliveries (SPEC §4). Stored by `stores.deliveries` (its keys and indexes are described there);
every item expires after DELIVERY_LOG_DAYS, or the organization's retention when shorter. The
summary keeps the delivery's payload so a failed delivery can be retried through the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

from success_metrics.errors import ConflictError, NotFoundError
from success_metrics.settings import get_settings
from success_metrics.stores import organizations
from success_metrics.stores.deliveries import DeliveryStore, Page
from success_metrics.sync_queue import pack_events, unpack_events

Status = Literal[
    "pending", "succeeded", "partial", "failed", "skipped", "retrying", "dead_lettered", "withheld"
]


def store() -> DeliveryStore:
    return DeliveryStore.default()


def _expiry(org_id: str) -> int:
    """DELIVERY_LOG_DAYS from now, or the organization's retention when that is shorter: the
    log keeps payloads, which must not outlive the events they carry."""

    retention = organizations.get_organization(org_id).retention_days
    days = min(get_settings().delivery_log_days, retention)
    return int(time.time()) + days * 86400


def summary(org_id: str, delivery_id: str) -> dict[str, Any] | None:
    """The summary with its `payload`, or None (also when past the log's retention: TTL may not
    have removed it yet)."""
    found = store().summary(org_id, delivery_id)
    if found is None or found[2] <= time.time():
        return None
    doc, payload, _ = found
    return {**doc, "payload": payload}


def record_attempt(
    org_id: str,
    delivery_id: str,
    *,
    dest_id: str,
    kind: str,
    attempt: int,
    status: Status,
    status_code: int | None,
    latency_ms: float,
    event_ids: list[str],
    error: str | None,
    failed: dict[str, str] | None = None,
    skipped: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
    delivered: list[str] | None = None,
    previous: dict[str, Any] | None = None,
) -> None:
    """Write one attempt and the updated summary (`previous`: the summary already read)."""
    now = int(time.time())
    attempt_doc = {
        "delivery_id": delivery_id,
        "dest_id": dest_id,
        "kind": kind,
        "attempt": attempt,
        "status": status,
        "status_code": status_code,
        "latency_ms": round(latency_ms, 1),
        "error": error,
        "at": now,
    }
    if previous is None:
        previous = summary(org_id, delivery_id) or {}
    summary_doc = {
        **attempt_doc,
        "event_ids": event_ids,
        "attempts": max(attempt, int(previous.get("attempts", 0))),
        "failed": failed or previous.get("failed") or {},
        "skipped": skipped or previous.get("skipped") or {},
        "payload": payload if payload is not None else previous.get("payload"),
        "delivered": sorted(set(previous.get("delivered", [])) | set(delivered or [])),
        "first_at": previous.get("first_at", now),
    }
    payload_now = summary_doc.pop("payload")
    store().put_attempt(org_id, attempt_doc, summary_doc, payload_now, _expiry(org_id))


WITHHELD_PER_ITEM = 500  # event ids per withheld summary: well under the 400 KB item limit


def withheld_groups(reasons: dict[str, str]) -> list[dict[str, list[str]]]:
    """`reasons` (event id → why) as groups of at most WITHHELD_PER_ITEM ids, each grouped by
    reason (`{why: [event ids]}`), one group per withheld summary."""
    ids = sorted(reasons)
    groups = []
    for start in range(0, len(ids), WITHHELD_PER_ITEM):
        group: dict[str, list[str]] = {}
        for event_id in ids[start : start + WITHHELD_PER_ITEM]:
            group.setdefault(reasons[event_id], []).append(event_id)
        groups.append(group)
    return groups


def record_withheld(
    org_id: str, delivery_id: str, *, dest_id: str, kind: str, withheld: dict[str, list[str]]
) -> None:
    """Record events the consent gate kept from a destination (`withheld`: why → event ids) as
    one `withheld` summary: no attempt was made and no payload is kept (the events were never
    queued, so there is nothing to retry). Idempotent: the router derives `delivery_id` from the
    source message, so a redelivered message writes the same item again."""
    now = int(time.time())
    doc = {
        "delivery_id": delivery_id,
        "dest_id": dest_id,
        "kind": kind,
        "attempt": 0,
        "status": "withheld",
        "status_code": None,
        "latency_ms": 0.0,
        "error": None,
        "at": now,
        "event_ids": sorted(i for ids in withheld.values() for i in ids),
        "attempts": 0,
        "failed": {},
        "skipped": {},
        "withheld": withheld,
        "delivered": [],
        "first_at": now,
    }
    store().put_summary(org_id, doc, None, _expiry(org_id))


def _withheld_reason(delivery: dict[str, Any], event_id: str) -> str | None:
    for why, ids in (delivery.get("withheld") or {}).items():
        if event_id in ids:
            return str(why)
    return None


def link_events(org_id: str, source: str, links: dict[str, list[str]]) -> None:
    """Record which deliveries of one routed message hold each event (`links`: event id →
    delivery ids), so one event's deliveries are a key lookup."""
    if links:
        store().put_event_links(org_id, source, links, _expiry(org_id))


def list_page(
    org_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
    *,
    dest_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
) -> Page:
    """One page of summaries (no payloads), newest attempt first: one index query and one
    batch read whatever the size of the log. `since` / `until` narrow the index range by the
    last attempt's time; `dest_id` filters the summaries read, so a page for one destination
    may hold fewer than `limit` (index pages are read until one matches or there are no more,
    at most 20)."""
    log = store()
    now = int(time.time())
    for _ in range(20):
        page = log.page(org_id, status, limit, cursor, now, since=since, until=until)
        if dest_id is None:
            return page
        matching = [d for d in page.summaries if d.get("dest_id") == dest_id]
        if matching or page.cursor is None:
            return Page(matching, page.cursor)
        cursor = page.cursor
    return Page([], cursor)


def attempts(org_id: str, delivery_id: str) -> list[dict[str, Any]]:
    """Every attempt of one delivery, oldest first: status code, latency, error."""
    return sorted(store().attempts(org_id, delivery_id), key=lambda a: int(a.get("attempt", 0)))


def list_deliveries(
    org_id: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest `limit` summaries (one page)."""
    return list_page(org_id, status, limit, None).summaries


def of_event(org_id: str, event_id: str) -> list[dict[str, Any]]:
    """The live summaries of the deliveries that carried or withheld one event, newest first."""
    log = store()
    now = time.time()
    found = [
        doc
        for doc, expires_at in log.summaries(org_id, log.deliveries_of(org_id, event_id))
        if expires_at > now
    ]
    return sorted(found, key=lambda d: (d.get("at", 0), d["delivery_id"]), reverse=True)


def outcome(delivery: dict[str, Any], event_id: str) -> str:
    """Where one event of a delivery stands: delivered, failed, skipped, withheld or pending."""
    if _withheld_reason(delivery, event_id) is not None:
        return "withheld"
    if event_id in delivery.get("delivered", []):
        return "delivered"
    if event_id in delivery.get("failed", {}):
        return "failed"
    if event_id in delivery.get("skipped", {}):
        return "skipped"
    return "pending"


def event_status(org_id: str, event_id: str) -> list[dict[str, Any]]:
    """Where one event stands at each destination that had it."""
    found = []
    for delivery in of_event(org_id, event_id):
        if event_id not in delivery.get("event_ids", []):
            continue  # erased from this delivery since
        found.append(
            {
                "delivery_id": delivery["delivery_id"],
                "dest_id": delivery["dest_id"],
                "kind": delivery["kind"],
                "state": outcome(delivery, event_id),
                "reason": delivery.get("failed", {}).get(event_id)
                or delivery.get("skipped", {}).get(event_id)
                or _withheld_reason(delivery, event_id),
            }
        )
    return found


def reopen(org_id: str, delivery_id: str) -> dict[str, Any]:
    """Forget final failures so a retry sends those events again; returns the payload."""
    current = summary(org_id, delivery_id)
    if current is not None and current.get("status") == "withheld":
        raise ConflictError(
            f"delivery {delivery_id} was withheld for lack of consent: it has nothing to retry "
            "(the events were never queued for the destination)"
        )
    if current is None or not current.get("payload"):
        raise NotFoundError(f"delivery {delivery_id} does not exist")
    current.update(status="pending", failed={}, error=None)
    payload: dict[str, Any] = current.pop("payload")
    store().put_summary(org_id, current, payload, _expiry(org_id))
    return payload


def scrub_payloads(
    org_id: str, transform: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
) -> int:
    """Apply `transform` to the events kept in every delivery payload of the organization
    (GDPR erasure); rewrites the summaries it changed and returns how many."""

    log = store()
    changed = 0
    for doc, payload, expires_at, _ in log.every_summary(org_id):
        if not payload:
            continue
        events = unpack_events(payload)
        kept = transform(events)
        if kept == events:
            continue
        # Producers choose event ids, and some put a user id in them: the removed events'
        # ids go from the summary and from the event links too.
        removed = {e["id"] for e in events} - {e["id"] for e in kept}
        doc["event_ids"] = [i for i in doc.get("event_ids", []) if i not in removed]
        doc["delivered"] = [i for i in doc.get("delivered", []) if i not in removed]
        for name in ("failed", "skipped"):
            doc[name] = {k: v for k, v in (doc.get(name) or {}).items() if k not in removed}
        scrubbed = {k: v for k, v in payload.items() if k not in ("events", "events_gzip")}
        scrubbed["events_gzip"] = pack_events(
            [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in kept]
        )
        log.put_summary(org_id, doc, scrubbed, expires_at)
        log.delete_event_links(org_id, removed)
        changed += 1
    return changed
