"""The metrics table (`MetricsTable`): counter items `pk = agg#<org>#<shard>`, `sk = <day>`
(one attribute per counter, `ADD`ed) and "applied" markers `pk = applied#<message id>`, one
per transaction (`sk = chunk#<n>`, listing the days it applied), written in that transaction so
a redelivered message cannot apply anything twice (docs/metrics.md). Earlier versions wrote a
marker per counter item (`sk = <counter item>`); they are still read.

Counter items do not expire: they hold no personal data, and the running totals a period's
start is computed from (MRR, paying suppliers, couples with a wedding) need every day since the
organization began. An item an earlier version wrote with an `expires_at` loses it when it is
next updated; until then the reader still honours it."""

from __future__ import annotations

import hashlib
import time
from datetime import date
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.settings import get_settings

AGG_SHARDS = 4
APPLIED_TTL_SECONDS = 30 * 86400  # longer than SQS retention (14 days) plus a DLQ replay
TRANSACTION_ITEMS = 99  # counter updates per transaction, with its marker: 100 actions, the maximum
APPLY_ATTEMPTS = 10


def shard_of(message_id: str) -> int:
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:2], "big") % AGG_SHARDS


def counter_key(org_id: str, shard: int, day: date) -> dict[str, Any]:
    return {"pk": {"S": f"agg#{org_id}#{shard}"}, "sk": {"S": day.isoformat()}}


def apply(org_id: str, message_id: str, by_day: dict[date, dict[str, Decimal]]) -> int:
    """Apply each day's deltas exactly once; returns the counter items applied now.

    The days go in transactions of up to 99 counter updates and one marker for the lot
    (`applied#<message>`, `chunk#<n>`, listing its days, put only if absent). The message's
    markers are read first: days already applied (by an earlier delivery, in whole
    transactions) are left out. A concurrent delivery that wrote the same chunk number first
    cancels this transaction whole; the markers are read again and the rest applied."""
    table = get_settings().metrics_table
    shard = shard_of(message_id)
    updates: dict[str, dict[str, Any]] = {}
    for day in sorted(by_day):
        counters = {k: v for k, v in by_day[day].items() if v != 0}
        if counters:
            updates[day.isoformat()] = _update(table, counter_key(org_id, shard, day), counters)
    applied = 0
    for _ in range(APPLY_ATTEMPTS):
        done, chunk = _applied(table, message_id)
        todo = [d for d in updates if d not in done]
        try:
            for start in range(0, len(todo), TRANSACTION_ITEMS):
                days = todo[start : start + TRANSACTION_ITEMS]
                actions: list[Any] = [_marker(table, message_id, chunk, days)]
                actions += [updates[d] for d in days]
                aws.dynamodb().transact_write_items(TransactItems=actions)
                applied += len(days)
                chunk += 1
            return applied
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons: list[Any] = exc.response.get("CancellationReasons") or [{}]
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                raise  # a conflict on a counter: nothing applied, SQS delivers the message again
    raise RuntimeError(f"{message_id}: its markers kept changing; the message is retried")


def _update(table: str, key: dict[str, Any], counters: dict[str, Decimal]) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(counters)}
    values: dict[str, Any] = {f":v{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
    adds = ", ".join(f"#a{i} :v{i}" for i in range(len(counters)))
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": f"ADD {adds} REMOVE expires_at",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _marker(table: str, message_id: str, chunk: int, days: list[str]) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": table,
            "Item": {
                "pk": {"S": f"applied#{message_id}"},
                "sk": {"S": f"chunk#{chunk:04d}"},
                "days": {"SS": days},
                "expires_at": {"N": str(int(time.time()) + APPLIED_TTL_SECONDS)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _applied(table: str, message_id: str) -> tuple[set[str], int]:
    """The days this message applied already, and its next chunk number (strongly consistent:
    a transaction just committed is seen)."""
    days: set[str] = set()
    chunk = 0
    pages = (
        aws.dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"applied#{message_id}"}},
            ConsistentRead=True,
        )
    )
    for page in pages:
        for item in page["Items"]:
            sk = item["sk"]["S"]
            if sk.startswith("chunk#"):
                days.update(item["days"]["SS"])
                chunk = max(chunk, int(sk.removeprefix("chunk#")) + 1)
            else:  # an earlier version's marker of one counter item, agg#<org>#<shard>#<day>
                days.add(sk.rsplit("#", 1)[1])
    return days, chunk


def read_counters(org_id: str, until: date, now: float) -> dict[date, dict[str, Decimal]]:
    """Every live counter item of the organization up to `until`, summed over shards."""
    table = get_settings().metrics_table
    found: dict[date, dict[str, Decimal]] = {}
    paginator = aws.dynamodb().get_paginator("query")
    for shard in range(AGG_SHARDS):
        pages = paginator.paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk AND sk <= :until",
            FilterExpression="attribute_not_exists(expires_at) OR expires_at > :now",
            ExpressionAttributeValues={
                ":pk": {"S": f"agg#{org_id}#{shard}"},
                ":until": {"S": until.isoformat()},
                ":now": {"N": str(int(now))},
            },
        )
        for page in pages:
            for item in page["Items"]:
                day = date.fromisoformat(item["sk"]["S"])
                target = found.setdefault(day, {})
                for name, value in item.items():
                    if "N" in value and name != "expires_at":
                        target[name] = target.get(name, Decimal(0)) + Decimal(value["N"])
    return found
