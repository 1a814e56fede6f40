"""Applying contributions exactly once (docs/metrics.md has the reasoning and the costs).

For each SQS message of accepted events:
1. claim each event id in the claims table, all in the one item of the ingestion request that
   queued them (`if_not_exists` per event, remembering the message id): an event already claimed
   by another message is skipped; one claimed by this same message (a redelivery) is ours again;
2. claim each once-ever and first-in-period fact of our events the same way, packed in one item
   per subject and month (batch-read first, so facts that already exist cost a read, not a
   write);
3. add up the deltas per counter item (organization, day, shard) and apply each item's update in
   a transaction together with an "applied" marker for (message, item): a redelivered message
   finds the markers and cannot apply anything twice, and a crash between items loses nothing.

Subscription revenue (MRR and its movements, `metrics.subscriptions`) depends on each supplier's
whole history, not on one event: the supplier's ledger (a claims-table item) keeps its changes
and the movements applied so far; a message adds its events, replays the history and applies the
difference. The difference is kept in the ledger under the message id, so a redelivery applies
the same amounts (and the markers make it at most once); a concurrent writer makes the
conditional write fail and the replay is done again on what it wrote.

The claims live in `stores.claims`, the counters and markers in `stores.metrics`. Transactions
touch only the metrics table, which holds counters and markers but no events, so
they stay cheap on AWS (2 WCU per item) and on moto (whose transactions copy the tables they use).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from success_metrics import concurrency
from success_metrics.metrics import funnel, subscriptions
from success_metrics.metrics.contributions import Token, contribution
from success_metrics.stores import metrics as metrics_store
from success_metrics.stores import organizations, suppression
from success_metrics.stores.claims import Claims, events_group

# How long a message's ledger differences are kept for its redelivery: the queue's retention
# (14 days) and a replay from its dead-letter queue.
PENDING_SECONDS = 30 * 86400
LEDGER_ATTEMPTS = 20


class Deltas:
    def __init__(self) -> None:
        self.by_day: dict[date, dict[str, Decimal]] = {}

    def add(self, day: date, counters: dict[str, Decimal]) -> None:
        target = self.by_day.setdefault(day, {})
        for name, value in counters.items():
            target[name] = target.get(name, Decimal(0)) + value


def compute_deltas(
    org_id: str,
    message_id: str,
    documents: list[dict[str, Any]],
    retention_days: int,
    webhook_id: str | None = None,
) -> Deltas:
    claims = Claims(org_id, message_id, int(time.time()) + retention_days * 86400)
    contributions = sorted((contribution(d) for d in documents), key=lambda c: (c.day, c.event_id))
    if webhook_id is not None:
        # Only the request that stored an event queues it (again, when resumed): its events'
        # claims live together, one write for the lot.
        ours_ids = claims.claim_in_group(
            events_group(webhook_id), [c.event_id for c in contributions]
        )
    else:  # a message without its request's id: one claim item per event
        tokens = [Token(f"event|{c.event_id}", {}) for c in contributions]
        ours_ids = {k.split("|", 1)[1] for k in claims.claim_all(tokens)}
    counted = [c for c in contributions if c.event_id in ours_ids]
    ours_facts = claims.claim_facts(t.key for c in counted for t in c.tokens)
    deltas = Deltas()
    counted_facts: set[str] = set()
    for contrib in counted:
        deltas.add(contrib.day, contrib.counters)
        for token in contrib.tokens:
            # A fact counts once: on the first (earliest) of this message's events claiming it.
            if token.key in ours_facts and token.key not in counted_facts:
                counted_facts.add(token.key)
                deltas.add(contrib.day, token.counters)
    counted_ids = {c.event_id for c in counted}
    changes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    steps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in documents:
        if doc["id"] not in counted_ids:
            continue
        change = subscriptions.change_of(doc)
        if change is not None:
            changes[str(doc["user_id"])].append(change.to_json())
        step = funnel.step_of(doc)
        if step is not None:
            steps[str(doc["user_id"])].append(step)
    # Every ledger this message touches, in one read (a conflict reads one again by itself).
    claims.prefetch_ledgers(
        [subscriptions.ledger_key(u) for u in changes] + [funnel.ledger_key(u) for u in steps]
    )
    ledgers = [
        (subscriptions.ledger_key(u), theirs, SUBSCRIPTIONS)
        for u, theirs in sorted(changes.items())
    ] + [(funnel.ledger_key(u), theirs, COUPLES) for u, theirs in sorted(steps.items())]
    # Each subject's ledger is its own item: they are updated side by side.
    for difference in concurrency.each(lambda ledger: _ledger(claims, *ledger), ledgers):
        for day, counters in difference.items():
            deltas.add(day, counters)
    return deltas


@dataclass(frozen=True)
class LedgerKind:
    """How a kind of ledger keeps its entries and turns them into movements."""

    # The entries worth keeping (all of them, or the earliest per step): (kept, changed).
    merge: Callable[[list[dict[str, Any]], list[dict[str, Any]]], tuple[list[dict[str, Any]], bool]]
    replay: Callable[[list[dict[str, Any]]], dict[str, dict[str, Decimal]]]


SUBSCRIPTIONS = LedgerKind(subscriptions.merge, subscriptions.replay_entries)
COUPLES = LedgerKind(funnel.merge, funnel.replay)


def _ledger(
    claims: Claims, key: str, entries: list[dict[str, Any]], kind: LedgerKind
) -> dict[date, dict[str, Decimal]]:
    """Add this message's entries to the ledger under `key`; the difference they make to its
    movements, to add to the message's deltas (see the module's description)."""
    for _ in range(LEDGER_ATTEMPTS):
        doc, version = claims.ledger(key)
        ledger = doc or {"entries": [], "applied": {}, "pending": {}}
        mine = ledger["pending"].get(claims.message_id)
        if mine is not None:  # a redelivery: the same difference again
            return {
                date.fromisoformat(day): {k: Decimal(v) for k, v in counters.items()}
                for day, counters in mine["deltas"].items()
            }
        kept, changed = kind.merge(ledger["entries"], entries)
        if not changed:
            return {}  # nothing these entries change (a later search than the first, say)
        replayed = kind.replay(kept)
        applied = {
            day: {k: Decimal(v) for k, v in counters.items()}
            for day, counters in ledger["applied"].items()
        }
        difference = subscriptions.difference(replayed, applied)
        now = int(time.time())
        pending = {
            mid: entry
            for mid, entry in ledger["pending"].items()
            if entry["at"] > now - PENDING_SECONDS
        }
        pending[claims.message_id] = {"at": now, "deltas": _json(difference)}
        updated = {
            "entries": kept,
            "applied": {day: {k: str(v) for k, v in c.items()} for day, c in replayed.items()},
            "pending": pending,
        }
        if claims.save_ledger(key, updated, version):
            return difference
    raise RuntimeError(f"the ledger {key} kept changing; the message is retried")


def _json(by_day: dict[date, dict[str, Decimal]]) -> dict[str, dict[str, str]]:
    return {day.isoformat(): {k: str(v) for k, v in c.items()} for day, c in by_day.items()}


def apply(org_id: str, message_id: str, deltas: Deltas) -> int:
    """Apply each day's deltas with its (message, item) marker; returns items applied now."""
    return metrics_store.apply(org_id, message_id, deltas.by_day)


def handle(message_id: str, body: dict[str, Any]) -> int:
    """Count one sync-queue message's events; safe to call again for the same message."""

    org = organizations.get_organization(body["org_id"])
    # An erased user's events still in the queue are not counted (nor claimed) any more.
    docs, _ = suppression.drop(org, body["events"])
    deltas = compute_deltas(
        org.org_id, message_id, docs, org.retention_days, body.get("webhook_id")
    )
    return apply(org.org_id, message_id, deltas)
