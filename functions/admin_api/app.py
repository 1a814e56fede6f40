"""Admin routes about the caller's organization: /v1/organization*, /v1/audit,
/v1/destinations*, /v1/deliveries*."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import admin
from success_metrics.http import json_body, register_problem_handlers
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)
admin.require_principal(app)


@app.get("/v1/organization")
def get_organization() -> dict[str, Any]:
    return admin.organization_view(admin.principal(app))


@app.put("/v1/organization/settings")
def put_organization_settings() -> dict[str, Any]:
    return admin.put_settings(admin.principal(app), json_body(app.current_event))


@app.get("/v1/audit")
def list_audit() -> dict[str, Any]:
    params = app.current_event.query_string_parameters or {}
    return admin.list_audit(admin.principal(app), dict(params))


@app.get("/v1/destinations")
def list_destinations() -> dict[str, Any]:
    return admin.list_destinations(admin.principal(app))


@app.get("/v1/destinations/<dest_id>")
def get_destination(dest_id: str) -> dict[str, Any]:
    return admin.get_destination(admin.principal(app), dest_id)


@app.put("/v1/destinations/<dest_id>")
def put_destination(dest_id: str) -> dict[str, Any]:
    return admin.put_destination(admin.principal(app), dest_id, json_body(app.current_event))


@app.delete("/v1/destinations/<dest_id>")
def delete_destination(dest_id: str) -> Response[str]:
    admin.delete_destination(admin.principal(app), dest_id)
    return Response(status_code=204, body="")


@app.get("/v1/deliveries")
def list_deliveries() -> dict[str, Any]:
    params = app.current_event.query_string_parameters or {}
    return admin.list_deliveries(admin.principal(app), dict(params))


@app.post("/v1/deliveries/<delivery_id>/retry")
def retry_delivery(delivery_id: str) -> Response[str]:
    answer = admin.retry_delivery(admin.principal(app), delivery_id)
    return Response(status_code=202, content_type="application/json", body=json.dumps(answer))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
