"""The API-key Lambda authorizer for admin routes (HTTP API, payload 2.0, simple responses).

It never denies: an invalid or revoked key is passed on as `authenticated: false` with the
reason, and the route answers a 401 problem document (an API Gateway deny could only give a
bare 403). Every admin route refuses such a context through `admin.require_principal`.
"""

from __future__ import annotations

from typing import Any

from success_metrics.errors import UnauthenticatedError
from success_metrics.observability import logger
from success_metrics.stores import organizations

MAX_HEADER = 512


def bearer_token(headers: dict[str, str]) -> str:
    header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("send the API key as 'Authorization: Bearer <key>'")
    if len(header) > MAX_HEADER:
        raise UnauthenticatedError("the Authorization header is too long")
    return token.strip()


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    try:
        record = organizations.authenticate(bearer_token(event.get("headers") or {}))
    except UnauthenticatedError as exc:
        logger.info("API key refused", extra={"reason": exc.detail})
        return {"isAuthorized": True, "context": {"authenticated": False, "reason": exc.detail}}
    logger.append_keys(org_id=record.org_id, key_id=record.key_id)
    return {
        "isAuthorized": True,
        "context": {
            "authenticated": True,
            "org_id": record.org_id,
            "key_id": record.key_id,
            "scopes": " ".join(s.value for s in record.scopes),
        },
    }
