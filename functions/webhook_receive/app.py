"""POST /v1/organizations/{org_id}/events: signed event ingestion."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import clock, ingest
from success_metrics.http import raw_body, register_problem_handlers
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)


@app.post("/v1/organizations/<org_id>/events")
def receive(org_id: str) -> Response:
    event = app.current_event
    headers = {name.lower(): value for name, value in (event.headers or {}).items()}
    result = ingest.ingest(org_id, headers, raw_body(event), clock.now())
    return Response(
        status_code=result.status,
        content_type="application/json",
        body=json.dumps(result.body),
        headers=result.headers,
    )


@logger.inject_lambda_context(
    correlation_id_path='headers."webhook-id" || requestContext.requestId'
)
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ingest.register_lambda_context(context)
    return app.resolve(event, context)
