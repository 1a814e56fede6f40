"""Fan-out: each accepted-events message becomes one delivery message per destination.

The delivery queue then gives every destination its own unit of work, retry and dead letter:
one failing platform never delays or duplicates another. Consent and anonymisation are applied
here, before anything is queued for a platform. Delivery ids are derived from the source message
and the destination, so a redelivered source message produces the same deliveries, which the
worker recognises in the delivery log.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from success_metrics import sync_queue
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import consent, destinations, organizations, suppression
from success_metrics.sync import delivery_log, privacy

EVENT_KINDS = ("mixpanel", "ga4", "webhook")  # Slack gets alerts and digests, not events
WITHHELD = -1  # the "chunks" -1, -2… of a source message's withheld events, in delivery ids


def delivery_id(source_message_id: str, dest_id: str, chunk: int) -> str:
    digest = hashlib.sha256(f"{source_message_id}|{dest_id}|{chunk}".encode()).hexdigest()
    return "dlv_" + digest[:24]


def _with_current_consent(
    doc: dict[str, Any], state: dict[str, dict[str, bool]], purpose: str = "analytics"
) -> dict[str, Any]:
    """The event as the consent gate must see it. A recorded withdrawal (the user's latest
    decision) wins over the flag the event carries; a recorded grant does not make an event
    that was sent without consent forwardable: it still needs its own flag."""
    user = doc.get("user_id") or doc.get("anonymous_id")
    recorded = state.get(str(user), {}).get(purpose) if user else None
    if recorded is not False:
        return doc
    return {**doc, "consent": {**(doc.get("consent") or {}), purpose: False}}


def _why_withheld(doc: dict[str, Any], state: dict[str, dict[str, bool]], purpose: str) -> str:
    user = doc.get("user_id") or doc.get("anonymous_id")
    if user and state.get(str(user), {}).get(purpose) is False:
        return f"the user withdrew {purpose} consent"
    return f"the event does not carry {purpose} consent"


def route(source_message_id: str, body: dict[str, Any]) -> int:
    """Queue the message's events for each enabled event destination; returns messages sent."""
    org = organizations.get_organization(body["org_id"])
    # Events of users erased since they were accepted go nowhere (SPEC §7).
    events, dropped = suppression.drop(org, body["events"])
    if dropped:
        metrics.add_metric(name="EventsSuppressed", unit=MetricUnit.Count, value=dropped)
    # Recorded whatever the destinations: the history is kept for the user, not for a platform.
    state = consent.decisions(org.org_id, events, org.retention_days, time.time())
    targets = [d for d in destinations.list_all(org.org_id) if d.enabled and d.kind in EVENT_KINDS]
    if not targets:
        return 0
    key = organizations.pseudonym_key(org)
    bodies: list[str] = []
    links: dict[str, list[str]] = {}  # event id → the deliveries that hold or withheld it
    for dest in targets:
        purpose = dest.consent_required()
        outbound = []
        outbound_ids = []
        withheld: dict[str, str] = {}
        for doc in events:
            if dest.kind == "webhook" and not dest.accepts(doc["type"]):
                continue
            gated = _with_current_consent(doc, state, purpose) if purpose else doc
            safe = privacy.outbound(
                gated,
                key,
                requires=purpose,
                anonymise_all=org.anonymise_all,
                anonymise_unknown=org.anonymise_unknown_country,
            )
            if safe is None:
                assert purpose is not None  # only a consent gate withholds
                withheld[str(doc["id"])] = _why_withheld(doc, state, purpose)
            else:
                outbound.append(json.dumps(safe, separators=(",", ":"), ensure_ascii=False))
                outbound_ids.append(str(doc["id"]))
        if withheld:
            metrics.add_metric(
                name="EventsWithheldNoConsent", unit=MetricUnit.Count, value=len(withheld)
            )
            # In the delivery log, so "where did my event go" has an answer (SPEC §4).
            for n, group in enumerate(delivery_log.withheld_groups(withheld)):
                withheld_id = delivery_id(source_message_id, dest.dest_id, WITHHELD - n)
                delivery_log.record_withheld(
                    org.org_id, withheld_id, dest_id=dest.dest_id, kind=dest.kind, withheld=group
                )
                for ids in group.values():
                    for event_id in ids:
                        links.setdefault(event_id, []).append(withheld_id)
        start = 0
        for chunk, docs in enumerate(sync_queue.chunks(outbound)):
            chunk_id = delivery_id(source_message_id, dest.dest_id, chunk)
            for event_id in outbound_ids[start : start + len(docs)]:
                links.setdefault(event_id, []).append(chunk_id)
            start += len(docs)
            envelope = {
                "org_id": org.org_id,
                "dest_id": dest.dest_id,
                "kind": dest.kind,
                "delivery_id": chunk_id,
                "events_gzip": sync_queue.pack_events(docs),
            }
            bodies.append(json.dumps(envelope, separators=(",", ":")))
    # Before the deliveries are queued, so a delivery recorded is always found from its events.
    source = hashlib.sha256(source_message_id.encode()).hexdigest()[:24]
    delivery_log.link_events(org.org_id, source, links)
    sent = sync_queue.send_bodies(get_settings().delivery_queue_url, org.org_id, bodies)
    logger.info("routed", extra={"destinations": len(targets), "deliveries": sent})
    return sent
