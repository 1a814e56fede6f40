"""SQS consumer: counts accepted events into the per-day metric aggregates, exactly once."""

from __future__ import annotations

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from success_metrics import dead_letters, sqs_consumer
from success_metrics.metrics import aggregator
from success_metrics.observability import MetricUnit, metrics


def record_handler(record: SQSRecord) -> None:
    # a replayed dead letter claims its counts as the message it replays: counted once
    applied = aggregator.handle(dead_letters.source_id(record.raw_event), record.json_body)
    metrics.add_metric(name="AggregateItemsApplied", unit=MetricUnit.Count, value=applied)


lambda_handler = sqs_consumer.handler(record_handler, queue="metrics")
