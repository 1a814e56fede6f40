"""The web console (`/console/…`): routes each request to `success_metrics.console.web`."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from success_metrics.console import web
from success_metrics.console.routes import ROUTES
from success_metrics.observability import logger, traced


def _request(event: dict[str, Any]) -> web.Request:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    cookies = dict(c.split("=", 1) for c in event.get("cookies") or [] if "=" in c)
    return web.Request(
        method=event["requestContext"]["http"]["method"],
        path=event.get("rawPath", "/"),
        query=dict(event.get("queryStringParameters") or {}),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        cookies={k.strip(): v.strip() for k, v in cookies.items()},
        body=raw,
        request_id=event["requestContext"].get("requestId", ""),
        source_ip=event["requestContext"]["http"].get("sourceIp", ""),
    )


def _response(reply: web.Reply) -> dict[str, Any]:
    binary = isinstance(reply.body, bytes)
    body = reply.body if isinstance(reply.body, str) else base64.b64encode(reply.body).decode()
    return {
        "statusCode": reply.status,
        "headers": {"Content-Type": reply.content_type, **reply.headers},
        "cookies": reply.cookies,
        "body": body,
        "isBase64Encoded": binary,
    }


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route_key = event.get("routeKey", "")
    method, _, path = route_key.partition(" ")
    handler = ROUTES.get((method, path))
    if handler is None:
        return _response(web.Reply(404, "not found\n", "text/plain; charset=utf-8"))
    return _response(web.dispatch(handler, _request(event), event.get("pathParameters") or {}))
