"""Admin routes of the HTTP API that belong to no other function (GET /v1/organization)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import admin
from success_metrics.http import register_problem_handlers
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)
admin.require_principal(app)


@app.get("/v1/organization")
def get_organization() -> dict[str, Any]:
    return admin.organization_view(admin.principal(app))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
