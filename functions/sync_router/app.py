"""SQS consumer of accepted events: one delivery message per destination."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from success_metrics import dead_letters, sqs_consumer
from success_metrics.sync import router


def record_handler(record: SQSRecord) -> None:
    # a replayed dead letter is routed as the message it replays: the same delivery ids
    router.route(dead_letters.source_id(record.raw_event), record.json_body)


lambda_handler = sqs_consumer.handler(record_handler, queue="sync")
