"""The metrics table (`MetricsTable`): counter items `pk = agg#<org>#<shard>`, `sk = <day>`
(one attribute per counter, `ADD`ed) and "applied" markers `pk = applied#<message id>`,
`sk = <counter item>`, written together in transactions so a redelivered message cannot apply
anything twice (docs/metrics.md).

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
TRANSACTION_ITEMS = 50  # each item is an update and its marker: 100 actions, the API maximum


def shard_of(message_id: str) -> int:
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:2], "big") % AGG_SHARDS


def counter_key(org_id: str, shard: int, day: date) -> dict[str, Any]:
    return {"pk": {"S": f"agg#{org_id}#{shard}"}, "sk": {"S": day.isoformat()}}


def apply(org_id: str, message_id: str, by_day: dict[date, dict[str, Decimal]]) -> int:
    """Apply each day's deltas with its (message, item) marker; returns items applied now."""
    table = get_settings().metrics_table
    shard = shard_of(message_id)
    now = int(time.time())
    pending = []
    for day in sorted(by_day):
        counters = {k: v for k, v in by_day[day].items() if v != 0}
        if not counters:
            continue
        key = counter_key(org_id, shard, day)
        names = {f"#a{i}": name for i, name in enumerate(counters)}
        values: dict[str, Any] = {f":v{i}": {"N": str(v)} for i, v in enumerate(counters.values())}
        adds = ", ".join(f"#a{i} :v{i}" for i in range(len(counters)))
        update = {
            "Update": {
                "TableName": table,
                "Key": key,
                "UpdateExpression": f"ADD {adds} REMOVE expires_at",
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
