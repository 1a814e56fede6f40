"""SQS consumer of deliveries: sends them to Mixpanel, GA4 and customer webhooks; and runs the
recovery jobs ("retry everything that failed since …") queued beside them."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import clock, dead_letters
from success_metrics.observability import logger, metrics, traced
from success_metrics.sync import recovery, worker


@logger.inject_lambda_context
@metrics.log_metrics
@traced
@dead_letters.recorded("delivery")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deliveries, recoveries = [], []
    for record in event["Records"]:
        body = json.loads(record["body"])
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        if "recovery_id" in body:
            recoveries.append((record["messageId"], body, receives))
        else:
            deliveries.append(
                worker.Delivery(message_id=record["messageId"], receive_count=receives, body=body)
            )
    retry = worker.deliver(deliveries, clock.now()) if deliveries else set()
    # recovery jobs after the deliveries: they use the rest of the invocation's time
    for message_id, body, receives in recoveries:
        if not _recover(message_id, body, receives, context):
            retry.add(message_id)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(retry)]}


def _recover(message_id: str, body: dict[str, Any], receives: int, context: Any) -> bool:
    org_id, recovery_id = str(body["org_id"]), str(body["recovery_id"])
    try:
        outcome = recovery.work(org_id, recovery_id, context.get_remaining_time_in_millis)
    except Exception as error:
        logger.exception(
            "recovery failed; SQS will redeliver it", extra={"recovery_id": recovery_id}
        )
        dead_letters.failed(message_id, error)
        if dead_letters.last_receive("delivery", receives):
            recovery.fail(org_id, recovery_id, f"{type(error).__name__}: {error}")
        return False
    logger.info("recovery run", extra={"recovery_id": recovery_id, "outcome": outcome})
    return True
