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
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws, concurrency
from success_metrics.exports.models import Filters
from success_metrics.models.events import Event
from success_metrics.settings import get_settings
from success_metrics.stores import batch
from success_metrics.stores.mentions import MentionStore, mentioned

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

    entries = [
        (e.id, found, expires_at(e, retention_days)) for e in events if (found := mentions(e))
    ]
    if not entries:
        return 0
    return MentionStore.of(org).put(entries)


def put_many(
    org_id: str,
    webhook_id: str,
    events: Sequence[StoredEvent],
    retention_days: int,
    now: float,
) -> list[Outcome]:
    """Each event's conditional put, side by side (`concurrency.each`): a 100-event request
    waits for about 13 round trips instead of 100."""
    return concurrency.each(
        lambda stored: put_once(
            org_id, webhook_id, stored.event, stored.document, retention_days, now
        ),
        events,
    )


# -- GDPR erasure: reading, rewriting and deleting one organization's events by id


def _key(org_id: str, event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{org_id}#{event_id}"}}


def read_documents(org_id: str, event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The stored documents of these events (strongly consistent), expired or not: erasure
    removes everything. Missing ids are left out."""
    keys = [_key(org_id, e) for e in dict.fromkeys(event_ids)]
    if not keys:
        return []
    found = batch.get(aws.dynamodb(), get_settings().events_table, keys, consistent=True)
    return [json.loads(i["body"]["S"]) for i in found]


def webhook_ids(org_id: str, event_ids: Iterable[str]) -> dict[str, str]:
    """The id of the ingestion request that stored each of these events (missing ids are left
    out)."""
    keys = [_key(org_id, e) for e in dict.fromkeys(event_ids)]
    if not keys:
        return {}
    table = get_settings().events_table
    found = batch.get(
        aws.dynamodb(), table, keys, consistent=True, projection="event_id, webhook_id"
    )
    return {i["event_id"]["S"]: i["webhook_id"]["S"] for i in found if "webhook_id" in i}


def delete(org_id: str, event_ids: Iterable[str]) -> int:
    keys = [_key(org_id, e) for e in dict.fromkeys(event_ids)]
    return batch.delete(aws.dynamodb(), get_settings().events_table, keys)


def rewrite_body(org_id: str, doc: dict[str, Any]) -> None:
    """Replace an event's stored document (an erasure's scrubbed copy); one deleted meanwhile
    stays deleted."""
    try:
        aws.dynamodb().update_item(
            TableName=get_settings().events_table,
            Key=_key(org_id, str(doc["id"])),
            UpdateExpression="SET body = :body",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={
                ":body": {"S": json.dumps(doc, separators=(",", ":"), ensure_ascii=False)}
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


# -- exports and access requests: one day shard of a range, one user's events

# The SHARDS queries of a day run at once, each one page ahead of the writer: reading is
# network-bound, and at most 2 x SHARDS pages (<= 1 MB each) are in memory.
_READERS = ThreadPoolExecutor(max_workers=2 * SHARDS, thread_name_prefix="export-read")


def shard_items(
    org_id: str, day: date, shard: int, after: str | None, filters: Filters, now: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One day shard of the `ByDay` index after `after`, filtered, read ahead a page."""
    condition = "day_pk = :pk" + (" AND day_sk > :after" if after else "")
    values: dict[str, Any] = {
        ":pk": {"S": f"{org_id}#{day.isoformat()}#{shard:02d}"},
        ":now": {"N": str(int(now))},
    }
    if after:
        values[":after"] = {"S": after}
    wanted = ["expires_at > :now"]
    if filters.types:
        names = []
        for i, event_type in enumerate(filters.types):
            values[f":t{i}"] = {"S": event_type}
            names.append(f":t{i}")
        wanted.append(f"#type IN ({', '.join(names)})")
    if filters.user_type:
        values[":ut"] = {"S": filters.user_type.value}
        wanted.append("user_type = :ut")
    request: dict[str, Any] = {
        "TableName": get_settings().events_table,
        "IndexName": "ByDay",
        "KeyConditionExpression": condition,
        "FilterExpression": " AND ".join(wanted),
        "ExpressionAttributeValues": values,
        "ProjectionExpression": "day_sk, body",
    }
    if filters.types:
        request["ExpressionAttributeNames"] = {"#type": "type"}
    client = aws.dynamodb()
    # Submitted now, not on the first next(): the day's shards load side by side.
    return _pages(client, request, _READERS.submit(client.query, **request))


def _pages(
    client: Any, request: dict[str, Any], pending: Future[Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    while True:
        page = pending.result()
        if "LastEvaluatedKey" in page:
            # Read ahead: the next page loads while this one is written out.
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            pending = _READERS.submit(client.query, **request)
        for item in page["Items"]:
            yield item["day_sk"]["S"], item
        if "LastEvaluatedKey" not in page:
            return


def user_event_keys(
    org_id: str, user: str, after: str | None, page_size: int | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(user sort key, base-table key) of the user's events, oldest first (ByUser is keys
    only: the events themselves are read in batches)."""
    request: dict[str, Any] = {
        "TableName": get_settings().events_table,
        "IndexName": "ByUser",
        "KeyConditionExpression": "user_pk = :pk" + (" AND user_sk > :after" if after else ""),
        "ExpressionAttributeValues": {":pk": {"S": f"{org_id}#{user}"}},
    }
    if after:
        request["ExpressionAttributeValues"][":after"] = {"S": after}
    if page_size:
        request["Limit"] = page_size
    client = aws.dynamodb()
    while True:
        page = client.query(**request)
        for item in page["Items"]:
            yield item["user_sk"]["S"], {"pk": item["pk"]}
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def user_event_ids(org_id: str, user: str, after: str | None, limit: int) -> list[tuple[str, str]]:
    """A page of (user sort key, event id) of the user's events after `after`, oldest first:
    at most `limit`, for a resumable walk."""
    found = []
    for sort_key, key in user_event_keys(org_id, user, after, page_size=limit):
        found.append((sort_key, str(key["pk"]["S"]).split("#", 1)[1]))
        if len(found) == limit:
            break
    return found


def user_events(
    org_id: str, user: str, after: str | None, now: float
) -> Iterator[tuple[dict[str, Any], str]]:
    """The user's stored event documents, oldest first, with the sort key of each."""
    table = get_settings().events_table
    client = aws.dynamodb()
    keys = user_event_keys(org_id, user, after)
    while True:
        chunk = list(itertools.islice(keys, 100))
        if not chunk:
            return
        found = {
            item["pk"]["S"]: json.loads(item["body"]["S"])
            for item in batch.get(client, table, [k for _, k in chunk])
            if int(item["expires_at"]["N"]) > now
        }
        for sort_key, key in chunk:
            if key["pk"]["S"] in found:
                yield found[key["pk"]["S"]], sort_key


def latest(org_id: str, days: Sequence[date], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the newest stored documents of each day shard of `days` (the console's
    live events: the caller sorts and cuts)."""
    client, found = aws.dynamodb(), []
    for day in days:
        for shard in range(SHARDS):
            answer = client.query(
                TableName=get_settings().events_table,
                IndexName="ByDay",
                KeyConditionExpression="day_pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"{org_id}#{day.isoformat()}#{shard:02d}"}},
                ScanIndexForward=False,
                Limit=limit,
                ProjectionExpression="body",
            )
            found += [json.loads(i["body"]["S"]) for i in answer["Items"]]
    return found


def latest_of_user(org_id: str, user: str, limit: int) -> list[dict[str, Any]]:
    """The user's newest `limit` stored documents (ByUser, newest first)."""
    answer = aws.dynamodb().query(
        TableName=get_settings().events_table,
        IndexName="ByUser",
        KeyConditionExpression="user_pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"{org_id}#{user}"}},
        ScanIndexForward=False,
        Limit=limit,
    )
    ids = [str(i["pk"]["S"]).split("#", 1)[1] for i in answer["Items"]]
    return read_documents(org_id, ids)
