"""The Lambda handler of an SQS consumer that reports partial batch failures: each record goes
to `record_handler`; a record that raises comes back (then to the dead-letter queue, recorded
for its organization when `queue` names a tenant's queue: `dead_letters`), the others are
deleted. Logged, measured and traced like every handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from success_metrics import dead_letters
from success_metrics.observability import logger, metrics, traced

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def handler(record_handler: Callable[[SQSRecord], None], queue: str | None = None) -> Handler:
    processor = BatchProcessor(event_type=EventType.SQS)

    def handle(record: SQSRecord) -> None:
        try:
            record_handler(record)
        except Exception as error:
            dead_letters.failed(record.message_id, error)
            raise

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        answer: dict[str, Any] = dict(
            process_partial_response(
                event=event, record_handler=handle, processor=processor, context=context
            )
        )
        return answer

    recorded = lambda_handler if queue is None else dead_letters.recorded(queue)(lambda_handler)
    return logger.inject_lambda_context(metrics.log_metrics(traced(recorded)))
