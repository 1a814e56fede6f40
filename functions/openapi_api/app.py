"""GET /v1/openapi.json: the API's OpenAPI document, generated on first use and kept warm.

A function of its own, so the OpenAPI machinery never weighs on the other handlers' cold start.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import openapi
from success_metrics.http import register_problem_handlers
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)


@app.get("/v1/openapi.json")
def get_openapi() -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/json",
        body=openapi.document_json(),
        headers={"Cache-Control": "public, max-age=300"},
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
