"""The audit table (`AuditTable`, `org_id` + time-ordered `sk`): one record per admin request
and per changing `smctl` operation (see `audit` for what a record holds)."""

from __future__ import annotations

from typing import Any

from success_metrics import aws
from success_metrics.settings import get_settings
from success_metrics.stores import items


def put(record: dict[str, Any]) -> None:
    aws.dynamodb().put_item(TableName=get_settings().audit_table, Item=items.serialize(record))


def complete(org_id: str, sk: str, status: int, outcome: str, resource_id: str | None) -> None:
    """Record the outcome of a request whose record was written before it ran."""
    values: dict[str, Any] = {":status": status, ":outcome": outcome}
    update = "SET #status = :status, outcome = :outcome"
    if resource_id:
        values[":resource"] = resource_id
        update += ", resource_id = :resource"
    aws.dynamodb().update_item(
        TableName=get_settings().audit_table,
        Key=items.serialize({"org_id": org_id, "sk": sk}),
        UpdateExpression=update,
        ConditionExpression="attribute_exists(sk)",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=items.serialize(values),
    )


def query(
    org_id: str,
    low: str,
    high: str,
    filters: list[str],
    names: dict[str, str],
    values: dict[str, Any],
    start: str | None,
    limit: int,
    max_pages: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, records with `low <= sk <= high` matching `filters`, at most `limit` of
    them read in at most `max_pages` pages: (records, the sk to continue after or None)."""
    request: dict[str, Any] = {
        "TableName": get_settings().audit_table,
        "KeyConditionExpression": "org_id = :org AND sk BETWEEN :low AND :high",
        "ExpressionAttributeValues": items.serialize(
            {**values, ":org": org_id, ":low": low, ":high": high}
        ),
        "ScanIndexForward": False,
    }
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
    if names:
        request["ExpressionAttributeNames"] = names
    if start is not None:
        request["ExclusiveStartKey"] = items.serialize({"org_id": org_id, "sk": start})
    found: list[dict[str, Any]] = []
    last: str | None = None
    for _ in range(max_pages):
        # Each page evaluates at most what is still wanted, so a page never overshoots.
        page = aws.dynamodb().query(**request, Limit=limit - len(found))
        found.extend(items.deserialize(i) for i in page.get("Items", []))
        evaluated = page.get("LastEvaluatedKey")
        last = items.deserialize(evaluated)["sk"] if evaluated else None
        if last is None or len(found) >= limit:
            break
        request["ExclusiveStartKey"] = evaluated
    return found, last
