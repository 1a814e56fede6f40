"""The one place logger, tracer and metrics are created.

Names come from the POWERTOOLS_* variables that `template.yaml` sets in `Globals`; the defaults
only matter outside Lambda (smctl, tests, the local stack).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "success-metrics")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SuccessMetrics")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
