"""Calling the admin API in-process, through the API-key authorizer."""

from __future__ import annotations

import json
from typing import Any

from devstack.lambda_events import LambdaContext, authorizer_event, http_event
from tests.support import invoke_http


def authorize(handler: Any, api_key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    event = authorizer_event(
        "arn:aws:execute-api:eu-west-1:123456789012:local/$default/GET/v1/organization",
        headers,
        [headers.get("Authorization", "")],
    )
    result: dict[str, Any] = handler(event, LambdaContext("ApiAuthorizerFunction", 5))
    return result


def get_organization(admin: Any, authorizer: Any, api_key: str | None) -> Any:
    context = authorize(authorizer, api_key)["context"]
    event = http_event(
        "GET",
        "/v1/organization",
        route_key="GET /v1/organization",
        headers={"authorization": f"Bearer {api_key}"},
        authorizer=context,
    )
    return invoke_http(admin, "AdminApiFunction", event)


def admin(
    handler: Any, authorizer: Any, api_key: str, method: str, target: str, body: Any = None
) -> Any:
    context = authorize(authorizer, api_key)["context"]
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    route, params = path, None
    if len(parts) == 3 and parts[1] == "destinations":
        route, params = "/v1/destinations/{dest_id}", {"dest_id": parts[2]}
    elif len(parts) == 4 and parts[1] == "deliveries":
        route, params = "/v1/deliveries/{delivery_id}/retry", {"delivery_id": parts[2]}
    event = http_event(
        method,
        path,
        route_key=f"{method} {route}",
        path_parameters=params,
        raw_query=query,
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        body=json.dumps(body).encode() if body is not None else None,
        authorizer=context,
    )
    return invoke_http(handler, "AdminApiFunction", event)


# The query parameters a route needs to answer 2xx (the routes with required query parameters).
ROUTE_QUERIES: dict[str, dict[str, str]] = {
    name: {"from": "2026-06-01", "to": "2026-06-30"}
    for name in ("getMetrics", "getCohorts", "getFunnel")
}
