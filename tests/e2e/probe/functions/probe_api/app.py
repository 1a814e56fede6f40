"""GET /probe/records lists ProbeTable; POST /probe/messages/{body} queues a message;
GET /probe/crash raises, to show what API Gateway answers when a function fails."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["routeKey"] == "GET /probe/crash":
        raise RuntimeError("the probe crashed on purpose")
    if event["routeKey"] == "POST /probe/messages/{body}":
        boto3.client("sqs").send_message(
            QueueUrl=os.environ["PROBE_QUEUE_URL"], MessageBody=event["pathParameters"]["body"]
        )
        return {"statusCode": 202, "body": json.dumps({"queued": event["pathParameters"]["body"]})}
    items = boto3.client("dynamodb").scan(TableName=os.environ["PROBE_TABLE"])["Items"]
    records = {
        item["pk"]["S"]: {k: next(iter(v.values())) for k, v in item.items() if k != "pk"}
        for item in items
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"records": records, "event_version": event["version"]}),
    }
