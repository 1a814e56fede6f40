"""Scheduled daily: posts each organization's digest and threshold alerts to Slack."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import clock
from success_metrics.metrics import digest
from success_metrics.observability import MetricUnit, logger, metrics, traced


@logger.inject_lambda_context
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = digest.run(clock.now())
    metrics.add_metric(name="DigestsPosted", unit=MetricUnit.Count, value=summary["digests"])
    metrics.add_metric(name="AlertsPosted", unit=MetricUnit.Count, value=summary["alerts"])
    logger.info("digest run", extra=summary)
    return summary
