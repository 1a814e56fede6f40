"""GDPR routes about one user (or anonymous id) of the caller's organization: consent, access,
erasure."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics import admin, clock
from success_metrics.exports import api as exports
from success_metrics.gdpr import erasure
from success_metrics.http import json_body, register_problem_handlers
from success_metrics.models.organizations import Scope
from success_metrics.observability import logger, metrics, traced
from success_metrics.stores import consent, organizations

app = APIGatewayHttpResolver()
register_problem_handlers(app)
admin.require_principal(app)


@app.get("/v1/gdpr/users/<user_id>/consent")
def get_consent(user_id: str) -> dict[str, Any]:
    caller = admin.principal(app).require(Scope.GDPR_WRITE)
    return consent.view(caller.org_id, user_id, clock.now())


@app.post("/v1/gdpr/access-requests")
def access_request() -> Response[str]:
    job, headers = exports.access_request(
        admin.principal(app), json_body(app.current_event), clock.now()
    )
    return Response(
        status_code=202,
        content_type="application/json",
        body=json.dumps(job),
        headers={**headers, "Location": job["links"]["self"]},
    )


@app.post("/v1/gdpr/erasures")
def create_erasure() -> Response[str]:
    caller = admin.principal(app).require(Scope.GDPR_WRITE)
    kind, subject = erasure.request(json_body(app.current_event))
    org = organizations.get_organization(caller.org_id)
    job, created = erasure.start(org, caller.key_id, subject, clock.now(), kind)
    view = job.view()
    return Response(
        status_code=202 if created else 200,
        content_type="application/json",
        body=json.dumps(view),
        headers={"Location": view["links"]["self"]},
    )


@app.get("/v1/gdpr/erasures/<erasure_id>")
def get_erasure(erasure_id: str) -> dict[str, Any]:
    caller = admin.principal(app).require(Scope.GDPR_WRITE)
    return erasure.get(caller.org_id, erasure_id).view()


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
