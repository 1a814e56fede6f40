"""Records each scheduled invocation with the event's detail-type."""

from __future__ import annotations

import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    boto3.client("dynamodb").update_item(
        TableName=os.environ["PROBE_TABLE"],
        Key={"pk": {"S": "schedule#" + event["detail-type"]}},
        UpdateExpression="ADD runs :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    return {"ran": True, "source": event["source"]}
