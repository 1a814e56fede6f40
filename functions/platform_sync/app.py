"""SQS consumer of deliveries: sends them to Mixpanel, GA4 and customer webhooks."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import clock
from success_metrics.observability import logger, metrics, traced
from success_metrics.sync import worker


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deliveries = [
        worker.Delivery(
            message_id=record["messageId"],
            receive_count=int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")),
            body=json.loads(record["body"]),
        )
        for record in event["Records"]
    ]
    retry = worker.deliver(deliveries, clock.now())
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(retry)]}
