"""API-key authorizer for the admin routes of the HTTP API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import authorizer
from success_metrics.observability import logger, scoped


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@scoped
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorizer.authorize(event)
