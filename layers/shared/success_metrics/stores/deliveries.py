"""The delivery log table (`DeliveriesTable`): the only module that knows its keys.

Items, every one with an `expires_at` (TTL):
- a delivery's summary: `pk = <org>`, `sk = <delivery id>`, `status`, `doc` (the summary as
  JSON), `payload` (what a retry sends again, JSON; absent when there is nothing to retry), and
  the sparse keys of two keys-only indexes, both time-ordered by the last attempt:
  `ByTime` (`time_pk = <org>`, `time_sk = <at, 10 digits>#<delivery id>`) and `ByStatus`
  (`status_pk = <org>#<status>`, same `time_sk`);
- one item per attempt: `pk = <org>`, `sk = <delivery id>#<attempt, 3 digits>`, `doc`;
- one item per event per routing of its message: `pk = <org>#event#<event id>`,
  `sk = <source digest>`, `deliveries` (the delivery ids that carried or withheld it), so one
  event's deliveries are a `Query` on one key;
- one item per dead-lettered message of the organization (`success_metrics.dead_letters`):
  `pk = <org>#dead`, `sk = <queue kind>#<message id>`, `doc` (JSON: when, receives, why, what it
  carried, replayed or not) and `body` (the message, gzipped), so a tenant's dead letters are one
  `Query` on one key, apart from the delivery indexes;
- one item per recovery job ("retry everything that failed since …", `sync.recovery`):
  `pk = <org>#recovery`, `sk = <recovery id>` (time-ordered), `doc` (JSON: the job's filter,
  progress and cursor).

Reads (eventually consistent, 4 KB per read unit, half a unit each): a listing page reads the
index (keys only, about 100 bytes an item) and then the summaries it lists, `BatchGetItem`; one
summary is one `GetItem`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from success_metrics import aws
from success_metrics.errors import ValidationFailedError
from success_metrics.settings import get_settings
from success_metrics.stores import batch, items

BY_TIME = "ByTime"
BY_STATUS = "ByStatus"
_LISTING_KEYS = frozenset({"pk", "sk", "time_pk", "time_sk"})
_STATUS_KEYS = frozenset({"pk", "sk", "status_pk", "time_sk"})


@dataclass(frozen=True, slots=True)
class Page:
    summaries: list[dict[str, Any]]
    cursor: str | None  # None when this was the last page


def _time_sk(doc: dict[str, Any]) -> str:
    return f"{int(doc.get('at', 0)):010d}#{doc['delivery_id']}"


class DeliveryStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    @classmethod
    def default(cls) -> DeliveryStore:
        """The deployed table, through the shared client."""
        return cls(aws.dynamodb(), get_settings().deliveries_table)

    # -- writing

    def summary_item(
        self, org_id: str, doc: dict[str, Any], payload: dict[str, Any] | None, expires_at: int
    ) -> dict[str, Any]:
        status = str(doc["status"])
        return items.serialize(
            {
                "pk": org_id,
                "sk": doc["delivery_id"],
                "status": status,
                "doc": json.dumps(doc, separators=(",", ":")),
                "payload": json.dumps(payload, separators=(",", ":")) if payload else None,
                "expires_at": expires_at,
                "time_pk": org_id,
                "status_pk": f"{org_id}#{status}",
                "time_sk": _time_sk(doc),
            }
        )

    def attempt_item(self, org_id: str, attempt: dict[str, Any], expires_at: int) -> dict[str, Any]:
        return items.serialize(
            {
                "pk": org_id,
                "sk": f"{attempt['delivery_id']}#{int(attempt['attempt']):03d}",
                "doc": json.dumps(attempt, separators=(",", ":")),
                "expires_at": expires_at,
            }
        )

    def put_summary(
        self, org_id: str, doc: dict[str, Any], payload: dict[str, Any] | None, expires_at: int
    ) -> None:
        self.client.put_item(
            TableName=self.table, Item=self.summary_item(org_id, doc, payload, expires_at)
        )

    def put_attempt(
        self,
        org_id: str,
        attempt: dict[str, Any],
        summary: dict[str, Any],
        payload: dict[str, Any] | None,
        expires_at: int,
    ) -> None:
        """The attempt and the summary it updates, in one batch (retried with backoff: a lost
        summary would make the worker send delivered events again)."""
        attempt_item = self.attempt_item(org_id, attempt, expires_at)
        batch.write(
            self.client,
            self.table,
            [
                {"PutRequest": {"Item": attempt_item}},
                {"PutRequest": {"Item": self.summary_item(org_id, summary, payload, expires_at)}},
            ],
        )

    def put_event_links(
        self, org_id: str, source: str, links: dict[str, list[str]], expires_at: int
    ) -> None:
        """`links`: event id → the delivery ids of one routed message that hold it."""
        batch.write(
            self.client,
            self.table,
            (
                {
                    "PutRequest": {
                        "Item": items.serialize(
                            {
                                "pk": f"{org_id}#event#{event_id}",
                                "sk": source,
                                "deliveries": sorted(set(ids)),
                                "expires_at": expires_at,
                            }
                        )
                    }
                }
                for event_id, ids in sorted(links.items())
            ),
        )

    def delete_event_links(self, org_id: str, event_ids: Iterable[str]) -> int:
        keys = []
        for event_id in event_ids:
            for link in self._links(org_id, event_id):
                keys.append(items.serialize({"pk": link["pk"], "sk": link["sk"]}))
        return batch.delete(self.client, self.table, keys)

    # -- reading

    def summary(
        self, org_id: str, delivery_id: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None, int] | None:
        """(summary, payload, expires_at), read strongly consistent; None when absent."""
        found = self.client.get_item(
            TableName=self.table,
            Key=items.serialize({"pk": org_id, "sk": delivery_id}),
            ConsistentRead=True,
        ).get("Item")
        return None if found is None else self._unpack(found)

    @staticmethod
    def _unpack(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
        values = items.deserialize(item)
        doc: dict[str, Any] = json.loads(values["doc"])
        # Summaries written before the payload had its own attribute kept it in the doc.
        payload = json.loads(values["payload"]) if "payload" in values else doc.get("payload")
        doc.pop("payload", None)
        return doc, payload, int(values.get("expires_at", 0))

    def summaries(
        self, org_id: str, delivery_ids: Iterable[str]
    ) -> list[tuple[dict[str, Any], int]]:
        """Summaries (without payload) with their expiry, in no particular order."""
        keys = [items.serialize({"pk": org_id, "sk": d}) for d in dict.fromkeys(delivery_ids)]
        found = batch.get(
            self.client,
            self.table,
            keys,
            projection="doc, expires_at",
        )
        out = []
        for item in found:
            values = items.deserialize(item)
            doc = json.loads(values["doc"])
            doc.pop("payload", None)
            out.append((doc, int(values.get("expires_at", 0))))
        return out

    def page(
        self,
        org_id: str,
        status: str | None,
        limit: int,
        cursor: str | None,
        now: int,
        since: int | None = None,
        until: int | None = None,
    ) -> Page:
        """Newest first by last attempt: one index page of `limit` keys, then those summaries.
        `since` / `until` (epoch seconds, inclusive) narrow the index range by the last
        attempt's time. Summaries past their expiry (TTL has not removed them yet) are left out
        of the page."""
        if status is None:
            index, key_names, condition = BY_TIME, _LISTING_KEYS, "time_pk = :pk"
            value = org_id
        else:
            index, key_names, condition = BY_STATUS, _STATUS_KEYS, "status_pk = :pk"
            value = f"{org_id}#{status}"
        values: dict[str, Any] = {":pk": value}
        if since is not None or until is not None:
            # time_sk is "<at, 10 digits>#<delivery id>": '$' sorts after '#'
            condition += " AND time_sk BETWEEN :low AND :high"
            values[":low"] = f"{max(since or 0, 0):010d}#"
            values[":high"] = (
                f"{min(until if until is not None else 9_999_999_999, 9_999_999_999):010d}$"
            )
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": items.serialize(values),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor is not None:
            start = items.decode_cursor(cursor, key_names)
            expected = "time_pk" if status is None else "status_pk"
            if items.deserialize(start)[expected] != value:
                raise ValidationFailedError("cursor is not one this API gave for this listing")
            query["ExclusiveStartKey"] = start
        answer = self.client.query(**query)
        ids = [items.deserialize(k)["sk"] for k in answer.get("Items", [])]
        by_id = {doc["delivery_id"]: (doc, exp) for doc, exp in self.summaries(org_id, ids)}
        listed = [by_id[i][0] for i in ids if i in by_id and by_id[i][1] > now]
        last = answer.get("LastEvaluatedKey")
        return Page(listed, items.encode_cursor(last) if last else None)

    def attempts(self, org_id: str, delivery_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of one delivery, oldest first (one `Query`)."""
        found = items.every(
            self.client,
            "query",
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=items.serialize(
                {":pk": org_id, ":prefix": f"{delivery_id}#"}
            ),
        )
        return [json.loads(items.deserialize(item)["doc"]) for item in found]

    # -- dead letters

    def put_dead_letter(self, org_id: str, doc: dict[str, Any], body: str, expires_at: int) -> None:
        """Record one dead-lettered message (again: a later final failure of the same message
        replaces the record, its replay state included)."""
        self.client.put_item(
            TableName=self.table,
            Item=items.serialize(
                {
                    "pk": f"{org_id}#dead",
                    "sk": f"{doc['queue']}#{doc['message_id']}",
                    "doc": json.dumps(doc, separators=(",", ":")),
                    "body": gzip.compress(body.encode("utf-8"), compresslevel=6),
                    "expires_at": expires_at,
                }
            ),
        )

    def dead_letters(self, org_id: str, now: int) -> list[dict[str, Any]]:
        """The organization's dead letters (without bodies), newest first."""
        found = items.every(
            self.client,
            "query",
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=items.serialize({":pk": f"{org_id}#dead"}),
            ProjectionExpression="doc, expires_at",
        )
        docs = [
            json.loads(values["doc"])
            for values in map(items.deserialize, found)
            if int(values.get("expires_at", 0)) > now
        ]
        return sorted(docs, key=lambda d: (d["at"], d["message_id"]), reverse=True)

    def dead_letter(
        self, org_id: str, queue: str, message_id: str
    ) -> tuple[dict[str, Any], str, int] | None:
        """(doc, body, expires_at) of one dead letter, or None."""
        found = self.client.get_item(
            TableName=self.table,
            Key=items.serialize({"pk": f"{org_id}#dead", "sk": f"{queue}#{message_id}"}),
            ConsistentRead=True,
        ).get("Item")
        if found is None:
            return None
        values = items.deserialize(found)
        body = gzip.decompress(bytes(values["body"])).decode("utf-8")
        return json.loads(values["doc"]), body, int(values.get("expires_at", 0))

    def claim_replay(self, org_id: str, doc: dict[str, Any], replayed_at: int) -> bool:
        """Mark a dead letter replayed unless it already is (two clicks replay once)."""
        updated = {**doc, "replayed_at": replayed_at}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=items.serialize(
                    {"pk": f"{org_id}#dead", "sk": f"{doc['queue']}#{doc['message_id']}"}
                ),
                UpdateExpression="SET doc = :doc",
                ConditionExpression="attribute_exists(pk) AND doc = :old",
                ExpressionAttributeValues=items.serialize(
                    {
                        ":doc": json.dumps(updated, separators=(",", ":")),
                        ":old": json.dumps(doc, separators=(",", ":")),
                    }
                ),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def every_dead_letter(self, org_id: str) -> Iterator[tuple[dict[str, Any], str, int]]:
        """Every dead letter with its body (GDPR erasure)."""
        found = items.every(
            self.client,
            "query",
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=items.serialize({":pk": f"{org_id}#dead"}),
        )
        for values in map(items.deserialize, found):
            body = gzip.decompress(bytes(values["body"])).decode("utf-8")
            yield json.loads(values["doc"]), body, int(values.get("expires_at", 0))

    # -- recovery jobs

    def put_recovery(self, org_id: str, doc: dict[str, Any], expires_at: int) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=items.serialize(
                {
                    "pk": f"{org_id}#recovery",
                    "sk": doc["recovery_id"],
                    "doc": json.dumps(doc, separators=(",", ":")),
                    "expires_at": expires_at,
                }
            ),
        )

    def recovery(self, org_id: str, recovery_id: str) -> dict[str, Any] | None:
        found = self.client.get_item(
            TableName=self.table,
            Key=items.serialize({"pk": f"{org_id}#recovery", "sk": recovery_id}),
            ConsistentRead=True,
        ).get("Item")
        return None if found is None else dict(json.loads(items.deserialize(found)["doc"]))

    def recoveries(self, org_id: str, limit: int) -> list[dict[str, Any]]:
        """The newest recovery jobs (one `Query`)."""
        answer = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=items.serialize({":pk": f"{org_id}#recovery"}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [json.loads(items.deserialize(i)["doc"]) for i in answer.get("Items", [])]

    def _links(self, org_id: str, event_id: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=items.serialize({":pk": f"{org_id}#event#{event_id}"}),
        )
        for answer in pages:
            for found in answer.get("Items", []):
                yield items.deserialize(found)

    def deliveries_of(self, org_id: str, event_id: str) -> list[str]:
        """The ids of the deliveries that carried or withheld one event: a key lookup."""
        ids: set[str] = set()
        for link in self._links(org_id, event_id):
            ids.update(link.get("deliveries", []))
        return sorted(ids)

    def every_summary(
        self, org_id: str
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None, int, dict[str, Any]]]:
        """Every summary of the organization (GDPR erasure), through the keys-only time index
        so attempt and event-link items are not read: (doc, payload, expires_at, key)."""
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=BY_TIME,
            KeyConditionExpression="time_pk = :pk",
            ExpressionAttributeValues=items.serialize({":pk": org_id}),
        )
        for answer in pages:
            keys = [{"pk": k["pk"], "sk": k["sk"]} for k in answer.get("Items", [])]
            for found in batch.get(self.client, self.table, keys):
                doc, payload, expires_at = self._unpack(found)
                yield doc, payload, expires_at, {"pk": found["pk"], "sk": found["sk"]}
