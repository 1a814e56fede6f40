"""`smctl dlq`: the dead-letter queues, counted, looked at and replayed."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from smctl.changes import uses_aws
from smctl.options import POSITIVE, command, group, output
from success_metrics import aws
from success_metrics.sync_queue import unpack_events

QUEUES = {
    "sync": "SYNC_QUEUE_URL",
    "metrics": "METRICS_QUEUE_URL",
    "delivery": "DELIVERY_QUEUE_URL",
    "export": "EXPORT_QUEUE_URL",
    "gdpr": "GDPR_QUEUE_URL",
}
QUEUE = click.option("--queue", type=click.Choice(sorted(QUEUES)), default="delivery")


dlq = group("dlq", "dead-letter queues")


def dead_letter_url(source_url: str) -> str:
    """The URL of the queue `source_url` dead-letters to (its redrive policy)."""
    sqs = aws.sqs()
    attributes = sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])
    policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
    name = policy["deadLetterTargetArn"].rsplit(":", 1)[1]
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def _summary(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {"body": body[:80]}
    return {
        "org_id": data.get("org_id"),
        "dest_id": data.get("dest_id"),
        "delivery_id": data.get("delivery_id"),
        "events": len(unpack_events(data)) if data.get("dest_id") else len(data.get("events", [])),
    }


@command(dlq, "list", help="count and show dead-lettered messages")
@QUEUE
@uses_aws
def list_messages(queue: str) -> None:
    dead = dead_letter_url(os.environ[QUEUES[queue]])
    sqs = aws.sqs()
    count = int(
        sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    peek = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=1)
    messages = [
        {"message_id": m["MessageId"], **_summary(m["Body"])} for m in peek.get("Messages", [])
    ]
    for message in peek.get("Messages", []):  # a look, not a take: visible again at once
        sqs.change_message_visibility(
            QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    lines = [f"{queue} dead-letter queue: about {count} message(s)"]
    lines += [
        f"  {m['message_id']}  {json.dumps({k: v for k, v in m.items() if k != 'message_id'})}"
        for m in messages
    ]
    output(
        {"queue": queue, "dead_letter_queue": dead, "approximate": count, "sample": messages},
        "\n".join(lines),
    )


@command(dlq, help="move dead-lettered messages back to their queue")
@QUEUE
@click.option("--max", "most", type=POSITIVE, default=1000, help="at most this many (oldest first)")
@uses_aws
def replay(queue: str, most: int) -> None:
    source = os.environ[QUEUES[queue]]
    dead = dead_letter_url(source)
    sqs = aws.sqs()
    moved = 0
    while moved < most:
        got = sqs.receive_message(
            QueueUrl=dead,
            MaxNumberOfMessages=min(10, most - moved),
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        for message in got:
            attributes = dict(message.get("MessageAttributes", {}))
            # the consumers key work on the first message's id: a replay does it once
            attributes.setdefault(
                "replay_of", {"DataType": "String", "StringValue": message["MessageId"]}
            )
            sqs.send_message(
                QueueUrl=source, MessageBody=message["Body"], MessageAttributes=attributes
            )
            sqs.delete_message(QueueUrl=dead, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    output({"queue": queue, "replayed": moved}, f"replayed {moved} message(s) to {queue}")
