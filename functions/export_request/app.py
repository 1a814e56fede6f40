"""Export routes: POST/GET /v1/exports, GET/DELETE /v1/exports/{id}, GET .../download."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import admin, audit, clock
from success_metrics.exports import api
from success_metrics.http import Principal, json_body, register_problem_handlers
from success_metrics.observability import logger, metrics, traced

app = APIGatewayHttpResolver()
register_problem_handlers(app)
# Every route but /download (no authorizer: it takes a link too) needs a principal.
admin.require_principal(app)


def _caller() -> Principal:
    return admin.principal(app)


@app.post("/v1/exports")
def create_export() -> Response[str]:
    caller = _caller()
    job, headers = api.create(caller, json_body(app.current_event), clock.now())
    return Response(
        status_code=202,
        content_type="application/json",
        body=json.dumps(job),
        headers={**headers, "Location": job["links"]["self"]},
    )


@app.get("/v1/exports")
def list_exports() -> dict[str, Any]:
    return api.list_exports(_caller(), dict(app.current_event.query_string_parameters or {}))


@app.get("/v1/exports/<export_id>")
def get_export(export_id: str) -> dict[str, Any]:
    return api.get_export(_caller(), export_id)


@app.delete("/v1/exports/<export_id>")
def cancel_export(export_id: str) -> dict[str, Any]:
    return api.cancel(_caller(), export_id, clock.now())


@app.get("/v1/exports/<export_id>/download")
def download_export(export_id: str) -> Response[str]:
    event = app.current_event
    now = clock.now()
    job = api.download_caller(
        export_id,
        dict(event.headers or {}),
        dict(event.query_string_parameters or {}),
        now,
        lambda org_id, key_id: audit.set_subject(app, org_id, key_id),
    )
    url = api.download(job, now)
    return Response(
        status_code=302,
        content_type="text/plain",
        body="",
        headers={"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
