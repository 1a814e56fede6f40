"""The OpenAPI document of the HTTP API, generated from the route table and the pydantic models
by the Powertools event handler (SPEC §2; `GET /v1/openapi.json`).

Each route of `routes.ROUTES` is registered on a resolver made for this purpose only, with a
signature Powertools reads (path, query and header parameters, the JSON body's model, the
answer's model) and every error answer described as a problem document. The functions that
serve the API do not import this module: the OpenAPI machinery costs their cold start nothing.
"""

from __future__ import annotations

import inspect
import json
from functools import cache
from typing import Annotated, Any

from success_metrics.models.api import Problem
from success_metrics.routes import ROUTES, Param, Route, resolve

TITLE = "Success Metrics API"
VERSION = "1.0.0"
PROBLEM_JSON = "application/problem+json"
_ERROR_TEXT = {
    400: "The request is not valid: `detail` says which field and why",
    401: "Missing, unknown, revoked or badly signed credential",
    403: "The API key lacks the route's scope",
    404: "No such resource in the caller's organization",
    409: "Conflict with the resource's state, or a webhook-id reused for another body",
    410: "The file or link has expired or was withdrawn",
    413: "The body or batch is too large",
    415: "Content-Type must be application/json",
    429: "A rate limit or cap was reached: `Retry-After` says when to come back",
}


def _annotation(param: Param) -> Any:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

    marker = {"path": Path, "query": Query, "header": Header}[param.where]
    kwargs: dict[str, Any] = {"description": param.description or None}
    if param.alias:
        kwargs["alias"] = param.alias
    schema = param.schema if param.required else param.schema | None
    return Annotated[schema, marker(**kwargs)]


def _stub(route: Route) -> Any:
    """A handler with the route's signature; only its signature is ever used."""
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.event_handler.openapi.params import Body

    def handler(**_: Any) -> None:  # pragma: no cover - the spec resolver is never invoked
        raise NotImplementedError(route.operation_id)

    parameters = []
    for param in route.params:
        parameters.append(
            inspect.Parameter(
                param.name.replace("-", "_"),
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_annotation(param),
                default=inspect.Parameter.empty if param.required else None,
            )
        )
    if route.body:
        parameters.append(
            inspect.Parameter(
                "body",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[resolve(route.body), Body(embed=False)],
            )
        )
    returns = resolve(route.response) if route.response else None
    handler.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    handler.__name__ = route.operation_id
    return handler


def _responses(route: Route) -> dict[int, Any]:

    success: dict[str, Any] = {"description": route.summary}
    if route.response:
        success["content"] = {"application/json": {"model": resolve(route.response)}}
    if route.status == 302:
        success = {
            "description": "Found: `Location` is a presigned URL valid for 15 minutes",
            "headers": {
                "Location": {"description": "the file's URL", "schema": {"type": "string"}}
            },
        }
    answers: dict[int, Any] = {route.status: success}
    for status in route.also:
        answers[status] = {**success, "description": "Already under way: the same job"}
    for status in route.errors:
        answers[status] = {
            "description": _ERROR_TEXT[status],
            "content": {PROBLEM_JSON: {"model": Problem}},
        }
    return answers


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, as a dict."""
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.openapi.models import (
        HTTPBearer,
        Server,
    )

    spec = APIGatewayHttpResolver(enable_validation=True)
    for route in ROUTES:
        security: list[dict[str, list[str]]] | None = (
            [{"apiKey": []}] if route.auth in ("api_key", "link_or_api_key") else None
        )
        spec.route(
            route.path.replace("{", "<").replace("}", ">"),
            method=route.method,
            summary=route.summary,
            operation_id=route.operation_id,
            status_code=route.status,
            responses=_responses(route),
            tags=[route.path.split("/")[2]],
            security=security,
        )(_stub(route))
    raw = spec.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=(
            "Signed business events in; success metrics, exports and GDPR requests out. "
            "Every error is an RFC 9457 problem document (application/problem+json)."
        ),
        servers=[Server(url="/")],
        security_schemes={"apiKey": HTTPBearer(description="an admin API key: `Bearer sm_…`")},
    )
    doc: dict[str, Any] = json.loads(raw)
    _without_validation_errors(doc)
    return doc


def _without_validation_errors(doc: dict[str, Any]) -> None:
    """Powertools adds a 422 answer to every route (this API answers 400 problem documents)
    and a JSON body to answers that have none (204, 302)."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status in ("204", "302"):
                if status in responses:
                    responses[status].pop("content", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)


def document_json() -> str:
    """The document as committed in docs/openapi.json (stable key order, trailing newline)."""
    return json.dumps(document(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
