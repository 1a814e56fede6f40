"""SQS consumer of accepted events: one delivery message per destination."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from success_metrics import sqs_consumer
from success_metrics.sync import router


def record_handler(record: SQSRecord) -> None:
    router.route(record.message_id, record.json_body)


lambda_handler = sqs_consumer.handler(record_handler)
