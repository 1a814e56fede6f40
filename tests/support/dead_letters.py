"""A message that fails every receive of its queue's real consumer until SQS dead-letters it
(moto's redrive), for the dead-letter tests."""

from __future__ import annotations

import importlib
import json
from typing import Any

from devstack.lambda_events import LambdaContext, sqs_record
from devstack.provision import Stack
from success_metrics import aws, dead_letters

# queue kind → (queue, handler module, function)
CONSUMERS: dict[str, tuple[str, str, str]] = {
    "sync": ("SyncQueue", "sync_router.app", "SyncRouterFunction"),
    "metrics": ("MetricsQueue", "metrics_aggregate.app", "MetricsAggregateFunction"),
    "export": ("ExportQueue", "export_worker.app", "ExportWorkerFunction"),
    "gdpr": ("GdprQueue", "gdpr_worker.app", "GdprWorkerFunction"),
}


def failing_body(queue: str, org_id: str) -> dict[str, Any]:
    if queue in ("sync", "metrics"):
        # events that are not a list: every receive raises
        return {"org_id": org_id, "webhook_id": "wh_broken", "events": {"not": "a list"}}
    # a job message without its job's id (the workers fail a job they can name themselves,
    # on its last attempt, and the Exports and Privacy pages show it)
    if queue == "export":
        return {"org_id": org_id, "kind": "plan"}
    return {"org_id": org_id}


def receive_until_dead(stack: Stack, queue: str, body: dict[str, Any]) -> int:
    """Send one message and run its consumer on every receive until SQS dead-letters it;
    returns how many receives it took."""
    name, module, function = CONSUMERS[queue]
    handler = importlib.import_module(module).lambda_handler
    url, arn = stack.physical[name]["Ref"], stack.physical[name]["Arn"]
    sqs = aws.sqs()
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    receives = 0
    for _ in range(dead_letters.MAX_RECEIVES[queue] + 2):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30, AttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            break
        message = got[0]
        receives += 1
        record = sqs_record(
            arn, message["MessageId"], message["ReceiptHandle"], message["Body"],
            attributes=message["Attributes"],
        )  # fmt: skip
        try:
            answer = handler({"Records": [record]}, LambdaContext(function, 60))
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
        except Exception:  # the whole invocation failed: the batch comes back
            failed = {message["MessageId"]}
        if message["MessageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return receives
