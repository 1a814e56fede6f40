"""Counts each delivery of each message; reports messages whose body starts with 'fail' as
failed, and raises (failing the whole batch) for a body starting with 'crash'."""

from __future__ import annotations

import os
from typing import Any

import boto3


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ddb = boto3.client("dynamodb")
    failures = []
    for record in event["Records"]:
        ddb.update_item(
            TableName=os.environ["PROBE_TABLE"],
            Key={"pk": {"S": "msg#" + record["body"]}},
            UpdateExpression="ADD deliveries :one SET batch_size = :n, remaining_ms = :ms",
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":n": {"N": str(len(event["Records"]))},
                ":ms": {"N": str(context.get_remaining_time_in_millis())},
            },
        )
        if record["body"].startswith("crash"):
            raise RuntimeError("the probe worker crashed on purpose")
        if record["body"].startswith("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
