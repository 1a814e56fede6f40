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

Transactions touch only the metrics table, which holds counters and markers but no events, so
they stay cheap on AWS (2 WCU per item) and on moto (whose transactions copy the tables they use).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.metrics.contributions import Contribution, Token, contribution
from success_metrics.settings import get_settings
from success_metrics.stores import batch

AGG_SHARDS = 4
APPLIED_TTL_SECONDS = 30 * 86400  # longer than SQS retention (14 days) plus a DLQ replay
BATCH_GET = 100
TRANSACTION_ITEMS = 50  # each item is an update and its marker: 100 actions, the API maximum


def shard_of(message_id: str) -> int:
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:2], "big") % AGG_SHARDS


def counter_key(org_id: str, shard: int, day: date) -> dict[str, Any]:
    return {"pk": {"S": f"agg#{org_id}#{shard}"}, "sk": {"S": day.isoformat()}}


class Claims:
    """The claims table: one small item per counted event and per counted fact."""

    def __init__(self, org_id: str, message_id: str, expires_at: int) -> None:
        self.org_id = org_id
        self.message_id = message_id
        self.expires_at = expires_at
        self.table = get_settings().metrics_claims_table
        self.values: dict[str, dict[str, str]] = {}

    def _pk(self, key: str) -> str:
        return f"{self.org_id}|{key}"

    def read(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Existing claims among `keys` (strongly consistent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        requested = [{"pk": {"S": self._pk(k)}} for k in wanted]
        for item in batch.get(aws.dynamodb(), self.table, requested, consistent=True):
            key = item["pk"]["S"].split("|", 1)[1]
            found[key] = {
                "mid": item["mid"]["S"],
                "value": json.loads(item.get("value", {}).get("S", "{}")),
            }
        return found

    def claim(self, key: str, value: dict[str, str] | None = None) -> bool:
        """True when this message owns the fact (now, or from an earlier delivery of it)."""
        item: dict[str, Any] = {
            "pk": {"S": self._pk(key)},
            "mid": {"S": self.message_id},
            "expires_at": {"N": str(self.expires_at)},
        }
        if value:
            item["value"] = {"S": json.dumps(value, separators=(",", ":"))}
        try:
            aws.dynamodb().put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR mid = :mid",
                ExpressionAttributeValues={":mid": {"S": self.message_id}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_all(self, tokens: list[Token]) -> set[str]:
        existing = self.read(t.key for t in tokens)
        ours: set[str] = set()
        for token in tokens:
            if token.key in ours:
                continue
            found = existing.get(token.key)
            if found is not None:
                if found["mid"] == self.message_id:
                    ours.add(token.key)
                continue
            if self.claim(token.key, token.value):
                ours.add(token.key)
        return ours

    def get(self, key: str) -> dict[str, Any] | None:
        return self.read([key]).get(key)


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
    table = get_settings().metrics_table
    shard = shard_of(message_id)
    now = int(time.time())
    pending = []
    for day in sorted(deltas.by_day):
        counters = {k: v for k, v in deltas.by_day[day].items() if v != 0}
        if not counters:
            continue
        key = counter_key(org_id, shard, day)
        names = {f"#a{i}": name for i, name in enumerate(counters)}
        values: dict[str, Any] = {f":v{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
        values[":exp"] = {
            "N": str(calendar.timegm((day + timedelta(days=retention_days)).timetuple()))
        }
        adds = ", ".join(f"#a{i} :v{i}" for i in range(len(counters)))
        update = {
            "Update": {
                "TableName": table,
                "Key": key,
                "UpdateExpression": f"ADD {adds} SET expires_at = if_not_exists(expires_at, :exp)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        marker = {
            "Put": {
                "TableName": table,
                "Item": {
                    "pk": {"S": f"applied#{message_id}"},
                    "sk": {"S": f"{key['pk']['S']}#{key['sk']['S']}"},
                    "expires_at": {"N": str(now + APPLIED_TTL_SECONDS)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        pending.append((marker, update))
    applied = 0
    for start in range(0, len(pending), TRANSACTION_ITEMS):
        applied += _transact(pending[start : start + TRANSACTION_ITEMS])
    return applied


def _transact(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> int:
    while pairs:
        try:
            actions: list[Any] = [action for pair in pairs for action in pair]
            aws.dynamodb().transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons: list[Any] = getattr(exc, "response", {}).get("CancellationReasons", [])
            done = {
                i // 2
                for i, reason in enumerate(reasons)
                if i % 2 == 0 and reason.get("Code") == "ConditionalCheckFailed"
            }
            if not done:
                raise
            # Items this message already applied on an earlier delivery: apply the rest.
            pairs = [pair for i, pair in enumerate(pairs) if i not in done]
            continue
        return len(pairs)
    return 0


def handle(message_id: str, body: dict[str, Any]) -> int:
    """Count one sync-queue message's events; safe to call again for the same message."""
    from success_metrics import organizations
    from success_metrics.gdpr import suppression

    org = organizations.get_organization(body["org_id"])
    # An erased user's events still in the queue are not counted (nor claimed) any more.
    docs, _ = suppression.drop(org, body["events"])
    deltas = compute_deltas(org.org_id, message_id, docs, org.retention_days)
    return apply(org.org_id, message_id, deltas, org.retention_days)
