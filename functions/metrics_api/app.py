"""GET /v1/metrics (success metrics for a range and granularity), /v1/metrics/cohorts (the
retention grids) and /v1/metrics/funnel (the couple funnel)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import admin
from success_metrics.http import register_problem_handlers
from success_metrics.metrics import api
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)
admin.require_principal(app)


@app.get("/v1/metrics")
def get_metrics() -> dict[str, Any]:
    return api.get_metrics(admin.principal(app), app.current_event.query_string_parameters or {})


@app.get("/v1/metrics/cohorts")
def get_cohorts() -> dict[str, Any]:
    return api.get_cohorts(admin.principal(app), app.current_event.query_string_parameters or {})


@app.get("/v1/metrics/funnel")
def get_funnel() -> dict[str, Any]:
    return api.get_funnel(admin.principal(app), app.current_event.query_string_parameters or {})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
