"""The one place logger, tracer and metrics are created.

Names come from the POWERTOOLS_* variables that `template.yaml` sets in `Globals`; the defaults
only matter outside Lambda (smctl, tests, the local stack).

The tracer is created on first use, not at import: creating it loads the X-Ray SDK (about half a
second on a cold start), which functions with tracing turned off should never pay.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator
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


# The function whose handler is running. In Lambda one process serves one function; where
# several share a process (the local stack, the tests), in-memory caches are kept per function
# so that none sees what another fetched with its own permissions.
_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("function", default=None)


def current_function() -> str | None:
    return _function.get()


@contextlib.contextmanager
def as_function(name: str | None) -> Iterator[None]:
    token = _function.set(name)
    try:
        yield
    finally:
        _function.reset(token)


def tracing_enabled() -> bool:
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in {"1", "true", "yes"}
    return not disabled and "AWS_LAMBDA_FUNCTION_NAME" in os.environ


@functools.cache
def get_tracer() -> Tracer:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def scoped(handler: Handler) -> Handler:
    """Marks the handler's work as its function's (what `traced` does, without a tracer)."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        with as_function(getattr(context, "function_name", None)):
            return handler(event, context)

    return wrapper  # type: ignore[return-value]


def traced(handler: Handler) -> Handler:
    """`Tracer.capture_lambda_handler`, with the tracer (and X-Ray SDK) loaded on first call."""
    wrapped: list[Callable[..., Any]] = []

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        with as_function(getattr(context, "function_name", None)):
            if not tracing_enabled():
                return handler(event, context)
            if not wrapped:
                wrapped.append(
                    get_tracer().capture_lambda_handler(
                        handler, capture_response=False, capture_error=False
                    )
                )
            return wrapped[0](event, context)

    return wrapper  # type: ignore[return-value]


__all__ = [
    "MetricUnit",
    "as_function",
    "current_function",
    "get_tracer",
    "logger",
    "metrics",
    "scoped",
    "traced",
]
