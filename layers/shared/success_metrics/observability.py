"""The one place logger, tracer and metrics are created.

Names come from the POWERTOOLS_* variables that `template.yaml` sets in `Globals`; the defaults
only matter outside Lambda (smctl, tests, the local stack).

The tracer is created on first use, not at import: creating it loads the X-Ray SDK (about half a
second on a cold start), which functions with tracing turned off should never pay.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "success-metrics")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SuccessMetrics")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in {"1", "true", "yes"}
    return not disabled and "AWS_LAMBDA_FUNCTION_NAME" in os.environ


@functools.cache
def get_tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def traced(handler: Handler) -> Handler:
    """`Tracer.capture_lambda_handler`, with the tracer (and X-Ray SDK) loaded on first call."""
    wrapped: list[Callable[..., Any]] = []

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if not tracing_enabled():
            return handler(event, context)
        if not wrapped:
            wrapped.append(get_tracer().capture_lambda_handler(handler))
        return wrapped[0](event, context)

    return wrapper  # type: ignore[return-value]


__all__ = ["MetricUnit", "get_tracer", "logger", "metrics", "traced"]
