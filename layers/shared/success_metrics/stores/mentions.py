"""The mention index: which stored events mention an id, so GDPR erasure finds them by key
instead of scanning the events table.

Items in the privacy table, written with each event: `pk = mention#<org>#<hash>`, `sk = <event
id>`, `expires_at` the event's own expiry. `hash` is an HMAC-SHA256 of the mentioned value with
a key derived from the organization's key for this purpose, so the index holds no id in clear.

What an event mentions (`mentioned`): every distinct string anywhere in its `properties` (nested
objects and lists included) that could be an id — 1 to 128 characters without whitespace — except
the values of the taxonomy's descriptive properties (`channel`, `plan`, `feature`…), and its own
`user_id`; plus its `anonymous_id` when it also has a user id (the per-user index lists such an
event under the user id only). An event mentions at most MAX_MENTIONS values; ingest refuses one
with more. Erasure queries one key per id of the subject: the expression size never depends on
how many ids a subject has, and a read costs half a read unit per 4 KB of keys returned.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from typing import Any

from success_metrics import aws
from success_metrics.settings import get_settings
from success_metrics.stores import batch, items, organizations

MAX_MENTIONS = 100
KEY_PURPOSE = "mention-index"  # the organization's derived key the hashes are made with
MAX_LENGTH = 128
# Properties whose values describe the event, never a person (see models.events).
DESCRIPTIVE = frozenset(
    {
        "channel",
        "campaign",
        "plan",
        "milestone",
        "vendor_category",
        "feature",
        "wedding_date",
        "budget",
    }
)


def _strings(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _id_like(value: str) -> bool:
    return 0 < len(value) <= MAX_LENGTH and not any(c.isspace() for c in value)


def mentioned(doc: dict[str, Any]) -> set[str]:
    """The values an event document mentions (see the module's description)."""
    properties = doc.get("properties") or {}
    found = {
        value
        for key, prop in properties.items()
        if key not in DESCRIPTIVE
        for value in _strings(prop)
        if _id_like(value)
    }
    user = doc.get("user_id")
    if user is not None:
        found.discard(str(user))
        if doc.get("anonymous_id"):
            found.add(str(doc["anonymous_id"]))
    return found


class MentionStore:
    def __init__(self, client: Any, table: str, org_id: str, key: bytes) -> None:
        self.client = client
        self.table = table
        self.org_id = org_id
        self.key = key

    @classmethod
    def of(cls, org: Any) -> MentionStore:
        """The index of one organization (`org`: its profile), on the deployed table."""
        return cls(
            aws.dynamodb(),
            get_settings().privacy_table,
            org.org_id,
            organizations.derived_key(org, KEY_PURPOSE),
        )

    def _pk(self, value: str) -> str:
        digest = hmac.new(self.key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"mention#{self.org_id}#{digest}"

    def put(self, events: Iterable[tuple[str, set[str], int]]) -> int:
        """Index `(event id, mentioned values, expires_at)`; returns the items written."""
        requests = [
            {
                "PutRequest": {
                    "Item": items.serialize(
                        {"pk": self._pk(value), "sk": event_id, "expires_at": expires_at}
                    )
                }
            }
            for event_id, values, expires_at in events
            for value in sorted(values)
        ]
        return batch.write(self.client, self.table, requests)

    def page(self, value: str, after: str | None, limit: int) -> tuple[list[str], str | None]:
        """Up to `limit` ids of events that mention `value` (strongly consistent), and the
        event id to continue after (None when there are no more)."""
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": items.serialize({":pk": self._pk(value)}),
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
            "Limit": limit,
        }
        if after is not None:
            query["ExclusiveStartKey"] = items.serialize({"pk": self._pk(value), "sk": after})
        answer = self.client.query(**query)
        ids = [items.deserialize(i)["sk"] for i in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return ids, (items.deserialize(last)["sk"] if last else None)

    def forget(self, value: str, event_ids: Iterable[str]) -> int:
        """Remove these events from `value`'s entries."""
        keys = [items.serialize({"pk": self._pk(value), "sk": e}) for e in event_ids]
        return batch.delete(self.client, self.table, keys)

    def forget_events(self, docs: Iterable[dict[str, Any]]) -> int:
        """Remove every entry of these (deleted) events."""
        keys = [
            items.serialize({"pk": self._pk(value), "sk": str(doc["id"])})
            for doc in docs
            for value in sorted(mentioned(doc))
        ]
        return batch.delete(self.client, self.table, keys)
