"""Applying contributions exactly once (docs/metrics.md has the reasoning and the costs).

For each SQS message of accepted events:
1. claim each event id in the claims table (conditional put, remembering the message id): an
   event already claimed by another message is skipped; one claimed by this same message (a
   redelivery) is ours again;
2. claim each once-ever and first-in-period fact of our events the same way (batch-read first,
   so facts that already exist cost a read, not a write);
3. add up the deltas per counter item (organization, day, shard) and apply each item's update in
   a transaction together with an "applied" marker for (message, item): a redelivered message
   finds the markers and cannot apply anything twice, and a crash between items loses nothing.

The claims live in `stores.claims`, the counters and markers in `stores.metrics`. Transactions
touch only the metrics table, which holds counters and markers but no events, so
they stay cheap on AWS (2 WCU per item) and on moto (whose transactions copy the tables they use).
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

from success_metrics.metrics.contributions import Contribution, Token, contribution
from success_metrics.stores import metrics as metrics_store
from success_metrics.stores import organizations, suppression
from success_metrics.stores.claims import Claims


class Deltas:
    def __init__(self) -> None:
        self.by_day: dict[date, dict[str, Decimal]] = {}

    def add(self, day: date, counters: dict[str, Decimal]) -> None:
        target = self.by_day.setdefault(day, {})
        for name, value in counters.items():
            target[name] = target.get(name, Decimal(0)) + value


def _conversions(claims: Claims, contrib: Contribution, deltas: Deltas, done: set[str]) -> None:
    """Trial-to-paid by trial cohort, whichever of the two events arrives last."""
    user = contrib.user_id
    if user is None:
        return
    if contrib.kind == "trial":
        trial_day, paid = contrib.day, claims.get(f"once|paid|{user}")
        converted = paid is not None and date.fromisoformat(paid["value"]["day"]) >= trial_day
    else:
        trial = claims.get(f"once|trial|{user}")
        signup = claims.get(f"once|signup|{user}")
        channel = signup["value"].get("channel", "unknown") if signup else "unknown"
        deltas.add(contrib.day, {f"paid_new|{channel}": Decimal(1)})
        if trial is None:
            return
        trial_day = date.fromisoformat(trial["value"]["day"])
        converted = trial_day <= contrib.day
    key = f"once|converted|{user}"
    # Within one message both events of a user may see each other: count the conversion once.
    if converted and key not in done and claims.claim(key):
        done.add(key)
        deltas.add(trial_day, {"trial_converted": Decimal(1)})


def compute_deltas(
    org_id: str, message_id: str, documents: list[dict[str, Any]], retention_days: int
) -> Deltas:
    claims = Claims(org_id, message_id, int(time.time()) + retention_days * 86400)
    contributions = sorted((contribution(d) for d in documents), key=lambda c: (c.day, c.event_id))
    event_tokens = [Token(f"event|{c.event_id}", {}) for c in contributions]
    ours_events = claims.claim_all(event_tokens)
    counted = [c for c in contributions if f"event|{c.event_id}" in ours_events]
    ours_facts = claims.claim_all([t for c in counted for t in c.tokens])
    deltas = Deltas()
    conversions: set[str] = set()
    counted_facts: set[str] = set()
    for contrib in counted:
        deltas.add(contrib.day, contrib.counters)
        for token in contrib.tokens:
            # A fact counts once: on the first (earliest) of this message's events claiming it.
            if token.key in ours_facts and token.key not in counted_facts:
                counted_facts.add(token.key)
                deltas.add(contrib.day, token.counters)
        if (contrib.kind == "trial" and f"once|trial|{contrib.user_id}" in ours_facts) or (
            contrib.kind == "paid" and f"once|paid|{contrib.user_id}" in ours_facts
        ):
            _conversions(claims, contrib, deltas, conversions)
    return deltas


def apply(org_id: str, message_id: str, deltas: Deltas, retention_days: int) -> int:
    """Apply each day's deltas with its (message, item) marker; returns items applied now."""
    return metrics_store.apply(org_id, message_id, deltas.by_day, retention_days)


def handle(message_id: str, body: dict[str, Any]) -> int:
    """Count one sync-queue message's events; safe to call again for the same message."""

    org = organizations.get_organization(body["org_id"])
    # An erased user's events still in the queue are not counted (nor claimed) any more.
    docs, _ = suppression.drop(org, body["events"])
    deltas = compute_deltas(org.org_id, message_id, docs, org.retention_days)
    return apply(org.org_id, message_id, deltas, org.retention_days)
