"""SQS consumer of GDPR erasures: one job per message, resumed from its saved progress."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import dead_letters
from success_metrics.gdpr import erasure
from success_metrics.observability import logger, metrics, traced


@logger.inject_lambda_context
@metrics.log_metrics
@traced
@dead_letters.recorded("gdpr")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event["Records"]:
        attempt = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        body = json.loads(record["body"])
        logger.append_keys(org_id=body["org_id"], erasure_id=body["erasure_id"])
        try:
            outcome = erasure.work(
                body["org_id"], body["erasure_id"], context.get_remaining_time_in_millis, attempt
            )
        except Exception as error:
            dead_letters.failed(record["messageId"], error)
            logger.exception("erasure work failed; SQS will redeliver it")
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        logger.info("erasure work", extra={"outcome": outcome})
        if outcome == "waiting":
            # A platform keeps failing: the job comes back after the visibility timeout.
            dead_letters.failed(record["messageId"], "a platform kept failing the erasure")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
