"""SQS consumer of export work: one message (a plan or a slice of one export) per invocation."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import clock, dead_letters
from success_metrics.exports import worker
from success_metrics.observability import logger, metrics, traced


@logger.inject_lambda_context
@metrics.log_metrics
@traced
@dead_letters.recorded("export")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    budget = worker.Budget(context.get_remaining_time_in_millis)
    for record in event["Records"]:
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            worker.handle(json.loads(record["body"]), budget, attempt, clock.now())
        except Exception as error:
            dead_letters.failed(record["messageId"], error)
            logger.exception("export work failed; SQS will redeliver it")
            failures.append({"itemIdentifier": record["messageId"]})
            worker.retry_later(record["receiptHandle"], attempt)
    return {"batchItemFailures": failures}
