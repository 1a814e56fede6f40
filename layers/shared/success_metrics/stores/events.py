"""The events table: each event stored exactly once per organization, with a retention expiry.

Keys (see docs/architecture.md):
- base table `pk = <org>#<event id>`: the dedup identity, so a conditional put stores an event
  once, and writes spread evenly over partitions whatever the day's traffic;
- index `ByDay` `day_pk = <org>#<yyyy-mm-dd>#<shard>`, `day_sk = <occurred_at>#<event id>`: a
  date range is read as days x shards independent slices, in parallel, and one heavy day is
  spread over SHARDS partitions;
- index `ByUser` `user_pk = <org>#<user>`: GDPR erasure and access requests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.models.events import Event
from success_metrics.settings import get_settings

SHARDS = 8


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    # Stored by an earlier, interrupted attempt of this same delivery (same webhook-id):
    # counted as accepted again so it is queued for sync, but not stored twice.
    RESUMED = "resumed"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: Event
    document: str


def shard_of(event_id: str) -> int:
    return int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:2], "big") % SHARDS


def document(event: Event, org_id: str, received_at: float) -> str:
    """The canonical JSON kept in the item and carried to the sync queue."""
    body = event.model_dump(mode="json", exclude_none=True)
    body["category"] = event.category.value
    body["org_id"] = org_id
    body["received_at"] = int(received_at)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def expires_at(event: Event, retention_days: int) -> int:
    return int((event.occurred_at + timedelta(days=retention_days)).timestamp())


def item(
    event: Event, org_id: str, webhook_id: str, doc: str, retention_days: int
) -> dict[str, Any]:
    occurred = event.occurred_at
    occurred_iso = occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expires = expires_at(event, retention_days)
    attributes: dict[str, Any] = {
        "pk": {"S": f"{org_id}#{event.id}"},
        "day_pk": {"S": f"{org_id}#{occurred:%Y-%m-%d}#{shard_of(event.id):02d}"},
        "day_sk": {"S": f"{occurred_iso}#{event.id}"},
        "user_pk": {"S": f"{org_id}#{event.actor}"},
        "user_sk": {"S": f"{occurred_iso}#{event.id}"},
        "org_id": {"S": org_id},
        "event_id": {"S": event.id},
        "type": {"S": event.type},
        "category": {"S": event.category.value},
        "occurred_at": {"S": occurred_iso},
        "webhook_id": {"S": webhook_id},
        "expires_at": {"N": str(expires)},
        "body": {"S": doc},
    }
    if event.user_type is not None:
        attributes["user_type"] = {"S": event.user_type.value}
    return attributes


def put_once(
    org_id: str, webhook_id: str, event: Event, doc: str, retention_days: int, now: float
) -> Outcome:
    """Conditional put on (organization, event id); an expired leftover may be replaced."""
    try:
        aws.dynamodb().put_item(
            TableName=get_settings().events_table,
            Item=item(event, org_id, webhook_id, doc, retention_days),
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = aws.old_item(exc)
        if old.get("webhook_id", {}).get("S") == webhook_id:
            return Outcome.RESUMED
        return Outcome.DUPLICATE
    return Outcome.STORED


def mentions(event: Event) -> set[str]:
    """What the event mentions, for the erasure index (see `stores.mentions`)."""
    from success_metrics.stores.mentions import mentioned

    return mentioned(
        {
            "properties": event.properties,
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
        }
    )


def index_mentions(org: Any, events: Sequence[Event], retention_days: int) -> int:
    """Record what these stored events mention (idempotent: a retried delivery writes the same
    entries again); returns the entries written."""
    from success_metrics import organizations
    from success_metrics.stores.mentions import MentionStore

    entries = [
        (e.id, found, expires_at(e, retention_days)) for e in events if (found := mentions(e))
    ]
    if not entries:
        return 0
    store = MentionStore(
        aws.dynamodb(),
        get_settings().privacy_table,
        org.org_id,
        organizations.derived_key(org, MENTION_KEY_PURPOSE),
    )
    return store.put(entries)


MENTION_KEY_PURPOSE = "mention-index"


def put_many(
    org_id: str,
    webhook_id: str,
    events: Sequence[StoredEvent],
    retention_days: int,
    now: float,
) -> list[Outcome]:
    return [
        put_once(org_id, webhook_id, stored.event, stored.document, retention_days, now)
        for stored in events
    ]
