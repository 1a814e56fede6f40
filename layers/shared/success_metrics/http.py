"""The HTTP edge shared by every API handler: problem documents, raw bodies, principals."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from success_metrics import strict_json
from success_metrics.errors import (
    ForbiddenError,
    NotFoundError,
    SuccessMetricsError,
    UnauthenticatedError,
    ValidationFailedError,
)
from success_metrics.models.organizations import Scope
from success_metrics.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

PROBLEM_JSON = "application/problem+json"
ModelT = TypeVar("ModelT", bound=BaseModel)


def problem(
    status: int, type_uri: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type_uri, "title": title, "status": status, "detail": detail}
    if instance:
        doc["instance"] = instance
    doc.update(extra)
    return doc


def problem_response(error: SuccessMetricsError, instance: str | None = None) -> Response[str]:
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.event_handler import Response

    body = problem(
        error.status, error.type_uri, error.title, error.detail, instance, **error.extensions
    )
    return Response(
        status_code=error.status,
        content_type=PROBLEM_JSON,
        body=json.dumps(body),
        headers=dict(error.headers),
    )


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The body exactly as the client sent it (API Gateway base64-encodes binary bodies)."""
    body = event.body or ""
    if event.is_base64_encoded:
        return base64.b64decode(body)
    return body.encode("utf-8")


def register_problem_handlers(app: APIGatewayHttpResolver) -> None:
    """Map every domain error, unknown route and unexpected failure to a problem document."""
    # this Powertools utility loads when first used (cold start)
    from aws_lambda_powertools.event_handler import Response

    @app.exception_handler(SuccessMetricsError)  # type: ignore[untyped-decorator]
    def _domain(error: SuccessMetricsError) -> Response[str]:
        if error.status == 429:
            metrics.add_metric(name="RateLimited", unit=MetricUnit.Count, value=1)
        if error.status == 401:
            metrics.add_metric(name="Unauthenticated", unit=MetricUnit.Count, value=1)
        logger.info("request refused", extra={"status": error.status, "problem": error.slug})
        return problem_response(error, app.current_event.raw_path)

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return problem_response(
            NotFoundError(
                f"no route for {app.current_event.http_method} {app.current_event.raw_path}"
            ),
            app.current_event.raw_path,
        )

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(error: Exception) -> Response[str]:
        # boto3 and botocore load on first use, not at import (cold start)
        from botocore.exceptions import ClientError

        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else ""
        throttled = code in {
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "ServiceUnavailable",
            "InternalServerError",
        }
        logger.exception("request failed", extra={"error_code": code or type(error).__name__})
        metrics.add_metric(name="RequestFailed", unit=MetricUnit.Count, value=1)
        status = 503 if throttled else 500
        body = problem(
            status,
            "https://success-metrics.dev/problems/" + ("unavailable" if throttled else "internal"),
            "Service unavailable" if throttled else "Internal error",
            "a dependency is busy; retry with the same webhook-id"
            if throttled
            else "the request could not be completed; it is safe to retry with the same webhook-id",
            app.current_event.raw_path,
        )
        return Response(
            status_code=status,
            content_type=PROBLEM_JSON,
            body=json.dumps(body),
            headers={"Retry-After": "5"} if throttled else {},
        )


class Principal:
    """The caller of an admin route, as the API-key authorizer established it."""

    def __init__(self, org_id: str, key_id: str, scopes: frozenset[str]) -> None:
        self.org_id = org_id
        self.key_id = key_id
        self.scopes = scopes

    @classmethod
    def from_event(cls, event: APIGatewayProxyEventV2) -> Principal:
        lambda_ctx = (
            (event.request_context.authorizer.get_lambda or {})
            if event.request_context.authorizer
            else {}
        )
        org_id = lambda_ctx.get("org_id")
        key_id = lambda_ctx.get("key_id")
        if not lambda_ctx.get("authenticated") or not org_id or not key_id:
            raise UnauthenticatedError(
                str(
                    lambda_ctx.get("reason")
                    or "a valid API key is required (Authorization: Bearer <key>)"
                )
            )
        scopes = frozenset(str(lambda_ctx.get("scopes", "")).split())
        return cls(str(org_id), str(key_id), scopes)

    def require(self, scope: Scope) -> Principal:
        if scope.value not in self.scopes:
            raise ForbiddenError(f"this API key lacks the {scope.value!r} scope")
        return self


def parse_model(model: type[ModelT], data: Any, what: str = "request") -> ModelT:
    """Validate `data` into `model`, or raise a 400 naming every problem (never the values)."""

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        summary = "; ".join(f"{'.'.join(e['loc']) or what}: {e['msg']}" for e in errors)
        raise ValidationFailedError(f"the {what} is not valid: {summary}", errors=errors) from exc


def json_body(event: APIGatewayProxyEventV2) -> Any:
    return strict_json.loads(raw_body(event) or b"null")
